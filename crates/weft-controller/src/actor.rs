//! The Controller actor: one per host. It runs one operation at a time, so checks and
//! the changes that follow them cannot interleave (two concurrent creates of one name:
//! exactly one succeeds).
//!
//! Mutating handlers answer with an [`AtomicResponse`]: the actor takes its [`Core`],
//! runs the operation to completion (store commits and driver calls are awaited, off the
//! actor's thread where they block), and puts it back before the next message.

use crate::core::{ControllerSnapshot, Core};
use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use weft_types::api::{
    CreateEndpointRequest, CreateNetworkRequest, CreateSandboxRequest, EndpointInfo, NetworkInfo,
    ProcessInfo, SandboxInfo, StartProcessRequest,
};
use weft_types::{Error, Name, NetworkId, NetworkRecord, ServiceMode, ServiceRecord};

/// The controller actor.
#[derive(Debug)]
pub struct Controller {
    /// Taken while an operation runs; always back before the next message.
    core: Option<Core>,
}

impl Controller {
    pub fn new(core: Core) -> Self {
        Controller { core: Some(core) }
    }

    /// Runs `op` on the core with the mailbox held. An operation that panics took the core
    /// with it: rather than a live agent refusing everything as busy, the process exits
    /// with [`PANIC_EXIT_CODE`] and a log line, so that its supervisor restarts it and
    /// recovery finishes or undoes what the operation left half-done.
    fn exclusive<R: 'static>(
        &mut self,
        op: impl FnOnce(Core) -> LocalBoxFuture<'static, (Core, Result<R, Error>)> + 'static,
    ) -> AtomicResponse<Self, Result<R, Error>> {
        let Some(core) = self.core.take() else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(busy()))));
        };
        let guarded = std::panic::AssertUnwindSafe(op(core)).catch_unwind();
        AtomicResponse::new(Box::pin(guarded.into_actor(self).map(
            |outcome, act, _| match outcome {
                Ok((core, result)) => {
                    act.core = Some(core);
                    result
                }
                Err(panic) => exit_after_panic(&*panic),
            },
        )))
    }

    fn read<R>(&self, f: impl FnOnce(&Core) -> Result<R, Error>) -> Result<R, Error> {
        self.core.as_ref().map_or_else(|| Err(busy()), f)
    }
}

/// The exit code of an agent whose controller operation panicked (EX_SOFTWARE).
pub const PANIC_EXIT_CODE: i32 = 70;

fn exit_after_panic(panic: &(dyn std::any::Any + Send)) -> ! {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(
        panic = %message,
        "a controller operation panicked and its state is lost: exiting so that a restart recovers"
    );
    std::process::exit(PANIC_EXIT_CODE)
}

fn busy() -> Error {
    // Unreachable while the actor holds the mailbox during operations.
    Error::internal("controller state is unavailable: an operation did not complete".to_owned())
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // API requests wait for their turn rather than being refused.
        ctx.set_mailbox_capacity(1024);
    }
}

/// Declares a message, its result, and a handler running `$body` with the core.
macro_rules! mutation {
    ($(#[$doc:meta])* $msg:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:ty,
     |$core:ident, $m:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $msg { $(pub $field: $ty),* }

        impl Message for $msg {
            type Result = Result<$ret, Error>;
        }

        impl Handler<$msg> for Controller {
            type Result = AtomicResponse<Self, Result<$ret, Error>>;
            fn handle(&mut self, $m: $msg, _: &mut Context<Self>) -> Self::Result {
                self.exclusive(move |mut $core| {
                    Box::pin(async move {
                        let result = $body.await;
                        ($core, result)
                    })
                })
            }
        }
    };
}

mutation!(
    /// Creates a network.
    CreateNetwork { request: CreateNetworkRequest } -> NetworkInfo,
    |core, m| core.create_network(m.request)
);
mutation!(
    /// Deletes a network by name, id or id prefix.
    DeleteNetwork { network: String, force: bool } -> (),
    |core, m| core.delete_network(&m.network, m.force)
);
mutation!(
    /// Creates an endpoint on a network.
    CreateEndpoint { network: String, request: CreateEndpointRequest } -> EndpointInfo,
    |core, m| core.create_endpoint(&m.network, m.request)
);
mutation!(
    /// Deletes an endpoint.
    DeleteEndpoint { network: String, endpoint: String, force: bool } -> (),
    |core, m| core.delete_endpoint(&m.network, &m.endpoint, m.force)
);
mutation!(
    /// Joins an endpoint to a sandbox.
    JoinEndpoint { network: String, endpoint: String, sandbox: String } -> (),
    |core, m| core.join(&m.network, &m.endpoint, &m.sandbox)
);
mutation!(
    /// Makes an endpoint leave its sandbox.
    LeaveEndpoint { network: String, endpoint: String } -> (),
    |core, m| core.leave(&m.network, &m.endpoint)
);
mutation!(
    /// Creates a sandbox.
    CreateSandbox { request: CreateSandboxRequest } -> SandboxInfo,
    |core, m| core.create_sandbox(m.request)
);
mutation!(
    /// Deletes a sandbox.
    DeleteSandbox { sandbox: String, force: bool } -> (),
    |core, m| core.delete_sandbox(&m.sandbox, m.force)
);

mutation!(
    /// Starts a detached process in a sandbox.
    StartProcess { sandbox: String, request: StartProcessRequest } -> ProcessInfo,
    |core, m| core.start_process(&m.sandbox, m.request)
);

mutation!(
    /// Stores and realises a global network's definition heard from the cluster.
    AdoptNetwork { record: NetworkRecord } -> (),
    |core, m| core.adopt_network(m.record)
);
mutation!(
    /// Removes a global network a manager deleted.
    ForgetNetwork { network: NetworkId } -> (),
    |core, m| core.forget_network(&m.network)
);

mutation!(
    /// Defines a service on global networks.
    CreateService { name: Name, mode: ServiceMode, networks: Vec<String> } -> ServiceRecord,
    |core, m| core.create_service(&m.name, m.mode, &m.networks)
);
mutation!(
    /// Removes a service.
    DeleteService { name: Name } -> (),
    |core, m| core.delete_service(&m.name)
);
mutation!(
    /// Every service of the cluster (asks a manager, so it waits its turn).
    ListServices {} -> Vec<ServiceRecord>,
    |core, _m| core.list_services()
);

/// Declares a read-only message answered from the core in place.
macro_rules! query {
    ($(#[$doc:meta])* $msg:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:ty,
     |$core:ident, $m:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $msg { $(pub $field: $ty),* }

        impl Message for $msg {
            type Result = Result<$ret, Error>;
        }

        impl Handler<$msg> for Controller {
            type Result = Result<$ret, Error>;
            fn handle(&mut self, $m: $msg, _: &mut Context<Self>) -> Self::Result {
                self.read(|$core| $body)
            }
        }
    };
}

query!(
    /// Lists ready networks.
    ListNetworks {} -> Vec<NetworkInfo>,
    |core, _m| Ok(core.list_networks())
);
query!(
    /// One network.
    InspectNetwork { network: String } -> NetworkInfo,
    |core, m| core.inspect_network(&m.network)
);
query!(
    /// Lists endpoints, of one network or all.
    ListEndpoints { network: Option<String> } -> Vec<EndpointInfo>,
    |core, m| core.list_endpoints(m.network.as_deref())
);
query!(
    /// Lists sandboxes.
    ListSandboxes {} -> Vec<SandboxInfo>,
    |core, _m| Ok(core.list_sandboxes())
);
query!(
    /// One sandbox.
    InspectSandbox { sandbox: String } -> SandboxInfo,
    |core, m| core.inspect_sandbox(&m.sandbox)
);
query!(
    /// The lifecycle of every object (tests, diagnostics).
    Observe {} -> ControllerSnapshot,
    |core, _m| Ok(core.snapshot())
);
