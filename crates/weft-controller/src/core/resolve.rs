//! Finding objects from what users type: an id, a name, or a unique prefix of an id.
//! Exact id first, then exact name, then id prefix (Docker's order).

use super::Core;
use weft_types::id::is_id_prefix;
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
