//! Finding objects from what users type: an id, a name, or a unique prefix of an id.
//! Exact id first, then exact name, then id prefix (Docker's order): a name beats an id
//! prefix, so `rm abc` removes the object named `abc`, not the one whose id starts with
//! it. So that a name can never stand for another object's id as listings show it, names
//! of 64 hex digits, and names of 12 or more hex digits that begin an existing id, are
//! refused at creation ([`check_name_not_an_id`]). Shorter hex names (`cafe`, `b`) are
//! fine: refusing them would fail at random, with the ids that happen to exist.

use super::Core;
use weft_types::id::{ID_LEN, SHORT_ID_LEN, is_id_prefix};
use weft_types::{EndpointRecord, Error, ErrorKind, Lifecycle, NetworkRecord, SandboxRecord};

/// Picks the one candidate `reference` designates among `(id, name, item)`.
fn pick<'a, T>(
    candidates: impl Iterator<Item = (&'a str, &'a str, &'a T)> + Clone,
    reference: &str,
    what: &str,
) -> Result<&'a T, Error> {
    if reference.is_empty() {
        return Err(Error::invalid(format!(
            "{what} reference must not be empty"
        )));
    }
    if let Some((_, _, t)) = candidates.clone().find(|(id, _, _)| *id == reference) {
        return Ok(t);
    }
    if let Some((_, _, t)) = candidates.clone().find(|(_, name, _)| *name == reference) {
        return Ok(t);
    }
    if is_id_prefix(reference) {
        let mut matching = candidates.filter(|(id, _, _)| id.starts_with(reference));
        match (matching.next(), matching.next()) {
            (Some((_, _, t)), None) => return Ok(t),
            (Some(_), Some(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidParameter,
                    format!("{what} id prefix {reference} is ambiguous: give more characters"),
                ));
            }
            _ => {}
        }
    }
    Err(Error::not_found(format!("{what} {reference}")))
}

/// Refuses a new `name` that a reference would read as an id: a full id (which always
/// wins over names), or a short id or longer prefix of one of `ids` (what `ls` shows, so
/// that `rm SHORT-ID` could not reach the object that took it as a name).
pub(super) fn check_name_not_an_id<'a>(
    name: &str,
    mut ids: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<(), Error> {
    if !is_id_prefix(name) {
        return Ok(());
    }
    if name.len() == ID_LEN {
        return Err(Error::invalid(format!(
            "{what} name {name} looks like an id (64 hex digits): pick a name that is not one"
        )));
    }
    if name.len() < SHORT_ID_LEN {
        return Ok(());
    }
    match ids.find(|id| id.starts_with(name)) {
        Some(id) => Err(Error::invalid(format!(
            "{what} name {name} is a prefix of the id of {what} {}: pick a name that is not one",
            &id[..SHORT_ID_LEN.min(id.len())]
        ))),
        None => Ok(()),
    }
}

impl Core {
    /// A network by name, id or id prefix. Networks still being created are invisible.
    pub(crate) fn find_network(&self, reference: &str) -> Result<&NetworkRecord, Error> {
        let candidates = self
            .networks
            .values()
            .map(|s| &s.record)
            .filter(|n| n.lifecycle != Lifecycle::Creating)
            .map(|n| (n.id.as_str(), n.name.as_str(), n));
        pick(candidates, reference, "network")
    }

    /// A network that is ready for new endpoints.
    pub(crate) fn find_ready_network(&self, reference: &str) -> Result<&NetworkRecord, Error> {
        let network = self.find_network(reference)?;
        if network.lifecycle == Lifecycle::Deleting {
            return Err(Error::forbidden(format!(
                "network {} is being deleted: run weft network rm {} again to finish",
                network.name, network.name
            )));
        }
        Ok(network)
    }

    /// An endpoint of `network` by name, id or id prefix.
    pub(crate) fn find_endpoint(
        &self,
        network: &NetworkRecord,
        reference: &str,
    ) -> Result<&EndpointRecord, Error> {
        let candidates = self
            .endpoints_of(&network.id)
            .filter(|e| e.lifecycle != Lifecycle::Creating)
            .map(|e| (e.id.as_str(), e.name.as_str(), e));
        pick(
            candidates,
            reference,
            &format!("endpoint on network {}", network.name),
        )
        .map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                Error::not_found(format!("endpoint {reference} on network {}", network.name))
            } else {
                e
            }
        })
    }

    /// A sandbox by name, id or id prefix.
    pub(crate) fn find_sandbox(&self, reference: &str) -> Result<&SandboxRecord, Error> {
        let candidates = self
            .sandboxes
            .values()
            .map(|s| &s.record)
            .filter(|s| s.lifecycle != Lifecycle::Creating)
            .map(|s| (s.id.as_str(), s.name.as_str(), s));
        pick(candidates, reference, "sandbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_ids_are_refused() {
        let full = "ab".repeat(32);
        let id = format!("abc1ff{}", "0".repeat(58));
        let ids = [id.as_str()];
        let check = |name: &str| check_name_not_an_id(name, ids.iter().copied(), "network");
        let e = check(&full).unwrap_err();
        assert!(e.message.contains("looks like an id"), "{}", e.message);
        let e = check(&id[..12]).unwrap_err();
        assert!(
            e.message
                .contains("prefix of the id of network abc1ff000000"),
            "{}",
            e.message
        );
        assert!(check(&id[..20]).is_err());
        // Short hex names, hex that prefixes no id, and names that are not hex, are fine.
        for ok in [
            "abc",
            "abc1ff",
            "b",
            "cafe",
            "abc1ff00000f",
            "web",
            "abc-1",
            "ABC",
        ] {
            check(ok).unwrap();
        }
    }

    #[test]
    fn exact_id_then_name_then_unique_prefix() {
        let items = [("abc1", "web", 1), ("abd2", "abc1x", 2), ("ff00", "abd", 3)];
        let c = || items.iter().map(|(i, n, v)| (*i, *n, v));
        assert_eq!(*pick(c(), "abc1", "x").unwrap(), 1);
        assert_eq!(*pick(c(), "abd", "x").unwrap(), 3, "name beats prefix");
        assert_eq!(*pick(c(), "abc", "x").unwrap(), 1);
        assert_eq!(
            pick(c(), "ab", "x").unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
        assert_eq!(
            pick(c(), "nope", "x").unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            pick(c(), "", "x").unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }
}
