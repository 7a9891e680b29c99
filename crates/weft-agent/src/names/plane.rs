//! The controller's side of the naming actor: its reports ([`NamePlane`]) become messages.

use super::ServiceLb;
use actix::prelude::*;
use weft_controller::names::{NamePlane, SandboxNames};
use weft_types::SandboxId;

use super::{ForgetSandbox, ReportSandbox};

/// The controller's [`NamePlane`]: its reports become this actor's messages. One message
/// per controller operation (the controller runs one at a time), each handled in memory.
#[derive(Debug, Clone)]
pub struct AgentNames {
    pub names: Addr<ServiceLb>,
}

impl NamePlane for AgentNames {
    fn sandbox_names(&self, names: SandboxNames) {
        self.names.do_send(ReportSandbox(names));
    }

    fn sandbox_gone(&self, sandbox: &SandboxId) {
        self.names.do_send(ForgetSandbox(sandbox.clone()));
    }

    fn local_services(&self, services: Vec<weft_types::ServiceRecord>) {
        self.names.do_send(LocalServices(services));
    }
}

/// This host's services on local networks, all of them (from the controller).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LocalServices(pub Vec<weft_types::ServiceRecord>);

impl Handler<LocalServices> for ServiceLb {
    type Result = ();
    fn handle(&mut self, msg: LocalServices, ctx: &mut Context<Self>) {
        let now: Vec<String> = msg.0.iter().map(|s| s.name.to_string()).collect();
        {
            let mut names = self.write_names();
            for gone in self.local_services.iter().filter(|n| !now.contains(n)) {
                names.directory.undefine_service(gone);
            }
            for service in msg.0 {
                names.directory.define_service(service);
            }
        }
        self.local_services = now;
        self.lb_changed(ctx);
    }
}
