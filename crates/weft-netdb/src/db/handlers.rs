//! Message handlers of the NetworkDb actor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::PoisonError;
use std::time::Instant;

use actix::prelude::*;
use chitchat::Chitchat;
use weft_keys::Keyring;

use super::messages::*;
use super::{NetworkDb, Watcher};
use crate::error::NetDbError;
use crate::schema::{self, LEAVING_KEY, MARKER_VALUE, READY_KEY, TableKey};
use crate::view::{Change, Entry};

impl NetworkDb {
    fn ensure_member(&self, op: &'static str) -> Result<(), NetDbError> {
        if self.leaving {
            return Err(NetDbError::Left { op });
        }
        Ok(())
    }

    fn create(&mut self, cc: &mut Chitchat, key: TableKey, value: &[u8]) -> Result<(), NetDbError> {
        self.ensure_member("create")?;
        let text = schema::encode_value(&key, value)?;
        self.refresh(cc, Instant::now());
        let gossip_key = key.gossip_key();
        // An entry of an earlier generation of this node is ours to re-assert.
        let in_own_state = cc.self_node_state().get(&gossip_key).is_some();
        if let Some(e) = self.tables.view().get(&key)
            && (*e.owner != *self.self_id.node_id || in_own_state)
        {
            return Err(NetDbError::AlreadyExists {
                key,
                owner: e.owner.to_string(),
            });
        }
        cc.self_node_state().set(gossip_key, text);
        self.refresh(cc, Instant::now());
        Ok(())
    }

    /// Checks that this node owns `key`, for update and delete.
    fn owned(&self, cc: &mut Chitchat, op: &'static str, key: &TableKey) -> Result<(), NetDbError> {
        self.ensure_member(op)?;
        if cc.self_node_state().get(&key.gossip_key()).is_some() {
            return Ok(());
        }
        match self.tables.view().get(key) {
            // An earlier generation of this node wrote it: ours to update or delete.
            Some(e) if *e.owner == *self.self_id.node_id => Ok(()),
            Some(e) => Err(NetDbError::NotOwner {
                op,
                key: key.clone(),
                owner: e.owner.to_string(),
            }),
            None => Err(NetDbError::NotFound {
                op,
                key: key.clone(),
            }),
        }
    }

    fn update(&mut self, cc: &mut Chitchat, key: TableKey, value: &[u8]) -> Result<(), NetDbError> {
        self.owned(cc, "update", &key)?;
        let text = schema::encode_value(&key, value)?;
        cc.self_node_state().set(key.gossip_key(), text);
        self.refresh(cc, Instant::now());
        Ok(())
    }

    fn delete(&mut self, cc: &mut Chitchat, key: TableKey) -> Result<(), NetDbError> {
        self.owned(cc, "delete", &key)?;
        cc.self_node_state().delete(&key.gossip_key());
        self.refresh(cc, Instant::now());
        Ok(())
    }

    fn change_keys(
        &mut self,
        cc: &mut Chitchat,
        change: impl FnOnce(&mut Keyring) -> Result<(), weft_keys::KeyringError>,
    ) -> Result<(), NetDbError> {
        let ring = {
            let mut ring = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
            change(&mut ring)?;
            ring.clone()
        };
        self.publish_keys(cc, &ring);
        self.refresh(cc, Instant::now());
        Ok(())
    }

    /// Publishes the leaving marker and returns the live peers to push it to.
    fn mark_leaving(&mut self, cc: &mut Chitchat) -> Vec<SocketAddr> {
        self.leaving = true;
        cc.self_node_state().set(LEAVING_KEY, MARKER_VALUE);
        self.refresh(cc, Instant::now());
        cc.live_nodes()
            .filter(|id| **id != self.self_id)
            .map(|id| id.gossip_advertise_addr)
            .collect()
    }

    fn observe(&self) -> NetDbState {
        let ring = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        let mut tables: BTreeMap<(String, weft_types::NetworkId), (usize, usize)> = BTreeMap::new();
        for (key, entry) in self.tables.view() {
            let slot = tables
                .entry((key.table.to_string(), key.network.clone()))
                .or_default();
            slot.0 += 1;
            slot.1 += usize::from(*entry.owner == *self.self_id.node_id);
        }
        NetDbState {
            node_id: self.self_id.node_id.to_string(),
            generation: self.self_id.generation_id,
            addr: self.self_id.gossip_advertise_addr,
            leaving: self.leaving,
            isolated: self.isolation.get(),
            members: self.members.clone(),
            tables: tables
                .into_iter()
                .map(|((table, network), (entries, owned))| TableStats {
                    table,
                    network,
                    entries,
                    owned,
                })
                .collect(),
            transport: self.stats.snapshot(),
            key_ids: ring.ids(),
            primary_key: ring.primary_id(),
            watchers: self.watchers.len(),
            malformed_entries: self
                .parsed
                .values()
                .map(|p| p.content.malformed.len())
                .sum(),
            events_sent: self.delivery.sent,
            events_coalesced: self.delivery.coalesced,
            events_waiting: self.watchers.iter().map(|w| w.outbox.len()).sum(),
        }
    }
}

impl Handler<CreateEntry> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: CreateEntry, _: &mut Context<Self>) -> Self::Result {
        self.locked_write(move |act, cc| act.create(cc, msg.key, &msg.value))
    }
}

impl Handler<UpdateEntry> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: UpdateEntry, _: &mut Context<Self>) -> Self::Result {
        self.locked_write(move |act, cc| act.update(cc, msg.key, &msg.value))
    }
}

impl Handler<DeleteEntry> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: DeleteEntry, _: &mut Context<Self>) -> Self::Result {
        self.locked_write(move |act, cc| act.delete(cc, msg.key))
    }
}

impl Handler<GetEntry> for NetworkDb {
    type Result = Option<Entry>;
    fn handle(&mut self, msg: GetEntry, _: &mut Context<Self>) -> Option<Entry> {
        self.tables.view().get(&msg.key).cloned()
    }
}

impl Handler<WalkTable> for NetworkDb {
    type Result = MessageResult<WalkTable>;
    fn handle(&mut self, msg: WalkTable, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.tables
                .view()
                .iter()
                .filter(|(k, _)| k.matches(&msg.table, Some(&msg.network)))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        )
    }
}

impl Handler<Watch> for NetworkDb {
    type Result = MessageResult<Watch>;
    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        let id = WatchId(self.next_watch);
        self.next_watch += 1;
        let mut watcher = Watcher {
            id,
            table: msg.table,
            network: msg.network,
            recipient: msg.recipient,
            outbox: Default::default(),
            closed: false,
        };
        for (key, entry) in self.tables.view() {
            if key.matches(&watcher.table, watcher.network.as_ref()) {
                let change = Change {
                    key: key.clone(),
                    prev: None,
                    next: Some(entry.clone()),
                };
                watcher.offer(change, true, &mut self.delivery);
            }
        }
        self.watchers.push(watcher);
        MessageResult(id)
    }
}

impl Handler<Unwatch> for NetworkDb {
    type Result = ();
    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        self.watchers.retain(|w| w.id != msg.id);
    }
}

impl Handler<Observe> for NetworkDb {
    type Result = MessageResult<Observe>;
    fn handle(&mut self, _: Observe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.observe())
    }
}

impl Handler<MarkReady> for NetworkDb {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: MarkReady, _: &mut Context<Self>) -> Self::Result {
        self.locked(|act, cc| {
            if cc.self_node_state().get(READY_KEY).is_none() {
                cc.self_node_state().set(READY_KEY, MARKER_VALUE);
                act.refresh(cc, Instant::now());
            }
        })
    }
}

impl Handler<HostAnswered> for NetworkDb {
    type Result = ();
    fn handle(&mut self, msg: HostAnswered, _: &mut Context<Self>) {
        self.host_seen.insert(msg.node_id, Instant::now());
    }
}

impl Handler<WatchMembers> for NetworkDb {
    type Result = MessageResult<WatchMembers>;
    fn handle(&mut self, _: WatchMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.members_tx.subscribe())
    }
}

impl Handler<AddKey> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: AddKey, _: &mut Context<Self>) -> Self::Result {
        self.locked(move |act, cc| act.change_keys(cc, |ring| ring.add(msg.key)))
    }
}

impl Handler<SetPrimaryKey> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: SetPrimaryKey, _: &mut Context<Self>) -> Self::Result {
        self.locked(move |act, cc| act.change_keys(cc, |ring| ring.set_primary(msg.id)))
    }
}

impl Handler<RemoveKey> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: RemoveKey, _: &mut Context<Self>) -> Self::Result {
        self.locked(move |act, cc| act.change_keys(cc, |ring| ring.remove(msg.id)))
    }
}

impl Handler<RotateKeys> for NetworkDb {
    type Result = AtomicResponse<Self, Result<(), NetDbError>>;
    fn handle(&mut self, msg: RotateKeys, _: &mut Context<Self>) -> Self::Result {
        self.locked(move |act, cc| {
            act.change_keys(cc, |ring| {
                *ring = msg.keyring;
                Ok(())
            })
        })
    }
}

impl Handler<Leave> for NetworkDb {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        let linger = self.config.leave_linger;
        let chitchat = self.chitchat.clone();
        Box::pin(
            async move { chitchat.lock_owned().await }
                .into_actor(self)
                .map(|mut guard, act, _| {
                    let peers = act.mark_leaving(&mut guard);
                    drop(guard);
                    if let Some(handle) = &act.handle {
                        for peer in peers {
                            // A handshake with every live peer carries the marker in one
                            // round trip; regular gossip covers those it misses.
                            let _ = handle.gossip(peer);
                        }
                    }
                })
                .then(move |(), _, _| {
                    actix::fut::wrap_future::<_, Self>(tokio::time::sleep(linger))
                })
                .map(|(), act, ctx| {
                    act.stop_gossip();
                    ctx.stop();
                }),
        )
    }
}

impl Handler<Abort> for NetworkDb {
    type Result = ();
    fn handle(&mut self, _: Abort, ctx: &mut Context<Self>) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
        ctx.stop();
    }
}

impl Handler<SetIsolated> for NetworkDb {
    type Result = ();
    fn handle(&mut self, msg: SetIsolated, _: &mut Context<Self>) {
        self.isolation.set(msg.0);
    }
}

impl Handler<SetLoss> for NetworkDb {
    type Result = ();
    fn handle(&mut self, msg: SetLoss, _: &mut Context<Self>) {
        self.isolation.set_loss(msg.0);
    }
}
