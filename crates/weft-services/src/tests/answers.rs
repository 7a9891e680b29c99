//! Local answers: which names answer, on which networks, with which records and flags.

use super::*;
use crate::{Outcome, UDP_MIN_REPLY};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::PTR;
use std::collections::BTreeSet;

/// `web` (10.0.1.2) on network 1 "front" and `db` (10.0.2.2, alias `store`) on network 2
/// "back".
fn two_networks() -> Directory {
    let mut dir = Directory::new();
    dir.insert(&net(1), "e-web", "node-a", record("web", &["10.0.1.2"]));
    let mut db = record("db", &["10.0.2.2"]);
    db.aliases = vec!["store".parse().unwrap()];
    dir.insert(&net(2), "e-db", "node-b", db);
    dir
}

fn a(dir: &Directory, view: &SandboxView, name: &str) -> Resolution {
    ask(dir, view, &query(name, RecordType::A), Transport::Udp)
}

#[test]
fn names_match_case_insensitively_with_or_without_trailing_dot() {
    let dir = two_networks();
    let v = view(&[(1, "front", false)]);
    for name in ["web", "web.", "WEB", "wEb."] {
        let resolution = a(&dir, &v, name);
        assert_eq!(resolution.outcome, Outcome::Answered, "{name}");
        assert_eq!(addresses(&reply(&resolution)), ips(&["10.0.1.2"]), "{name}");
    }
}

#[test]
fn answers_carry_ttl_600_ra_no_aa_and_echo_id_and_question() {
    let dir = two_networks();
    let message = reply(&a(&dir, &view(&[(1, "front", false)]), "WeB"));
    assert_eq!(message.id, ID);
    assert_eq!(message.response_code, ResponseCode::NoError);
    assert!(message.recursion_available && message.recursion_desired);
    assert!(!message.authoritative && !message.truncation);
    assert_eq!(message.queries[0].name().to_ascii(), "WeB.");
    assert_eq!(message.answers[0].ttl, 600);
    assert!(message.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn name_dot_network_resolves_on_the_named_network_only() {
    let dir = two_networks();
    let both = view(&[(1, "front", false), (2, "back", false)]);
    let web = ips(&["10.0.1.2"]);
    assert_eq!(addresses(&reply(&a(&dir, &both, "web.front"))), web);
    assert_eq!(addresses(&reply(&a(&dir, &both, "WEB.Front."))), web);
    assert_eq!(
        addresses(&reply(&a(&dir, &both, "store.back"))),
        ips(&["10.0.2.2"])
    );
    assert_eq!(a(&dir, &both, "web.back").outcome, Outcome::Forwarded);
    assert_eq!(
        a(&dir, &both, "web.front.example.com").outcome,
        Outcome::Forwarded
    );
    let front_only = view(&[(1, "front", false)]);
    assert_eq!(a(&dir, &front_only, "db.back").outcome, Outcome::Forwarded);
}

#[test]
fn dotted_network_names_split_at_every_dot() {
    let mut dir = Directory::new();
    dir.insert(&net(3), "e1", "n", record("c1", &["10.0.3.2"]));
    let v = view(&[(3, "net1.br", false)]);
    assert_eq!(
        addresses(&reply(&a(&dir, &v, "c1.net1.br"))),
        ips(&["10.0.3.2"])
    );
}

#[test]
fn aliases_answer_only_for_sandboxes_on_their_network() {
    let dir = two_networks();
    assert_eq!(
        a(&dir, &view(&[(1, "front", false)]), "store").outcome,
        Outcome::Forwarded,
        "the alias lives on back, the sandbox is only on front"
    );
    let on_back = a(&dir, &view(&[(2, "back", false)]), "STORE");
    assert_eq!(addresses(&reply(&on_back)), ips(&["10.0.2.2"]));
}

#[test]
fn the_first_view_network_that_has_the_name_wins() {
    let mut dir = Directory::new();
    dir.insert(&net(1), "e1", "n", record("app", &["10.0.1.9"]));
    dir.insert(&net(2), "e2", "n", record("app", &["10.0.2.9"]));
    let back_first = view(&[(2, "back", false), (1, "front", false)]);
    assert_eq!(
        addresses(&reply(&a(&dir, &back_first, "app"))),
        ips(&["10.0.2.9"])
    );
    let front_first = view(&[(1, "front", false), (2, "back", false)]);
    assert_eq!(
        addresses(&reply(&a(&dir, &front_first, "app"))),
        ips(&["10.0.1.9"])
    );
}

#[test]
fn shared_names_answer_every_address_deduplicated_and_shuffled() {
    let mut dir = Directory::new();
    for i in 0..8 {
        let mut r = record(&format!("w{i}"), &[&format!("10.0.1.{}", 10 + i)]);
        r.aliases = vec!["pool".parse().unwrap()];
        dir.insert(&net(1), &format!("e{i}"), "n", r);
    }
    let mut dup = record("w-dup", &["10.0.1.10"]);
    dup.aliases = vec!["pool".parse().unwrap()];
    dir.insert(&net(1), "e-dup", "n", dup);
    let v = view(&[(1, "front", false)]);
    let bytes = query("pool", RecordType::A);
    let mut rng = StdRng::seed_from_u64(1);
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let message = reply(&resolve(&dir, &v, &bytes, Transport::Udp, &mut rng));
        assert_eq!(message.answers.len(), 8, "10.0.1.10 once");
        orders.insert(format!("{:?}", message.answers));
    }
    assert!(orders.len() > 1, "the order changes between queries");
}

/// Service `web` on network 1: backends 10.0.1.2 and .3 active, .4 disabled.
fn service(vip: Option<&str>) -> Directory {
    let mut dir = Directory::new();
    for (i, disabled) in [(2, false), (3, false), (4, true)] {
        let mut r = record(&format!("web.{i}"), &[&format!("10.0.1.{i}")]);
        r.service = Some("web".parse().unwrap());
        r.vip = vip.map(|v| v.parse().unwrap());
        r.disabled = disabled;
        r.aliases = vec![format!("task-{i}").parse().unwrap()];
        dir.insert(&net(1), &format!("e{i}"), "n", r);
    }
    dir
}

#[test]
fn a_vip_service_answers_its_vip_and_tasks_answers_the_active_backends() {
    let dir = service(Some("10.0.1.100"));
    let v = view(&[(1, "front", false)]);
    assert_eq!(addresses(&reply(&a(&dir, &v, "web"))), ips(&["10.0.1.100"]));
    let tasks = ips(&["10.0.1.2", "10.0.1.3"]);
    assert_eq!(addresses(&reply(&a(&dir, &v, "tasks.web"))), tasks);
    assert_eq!(addresses(&reply(&a(&dir, &v, "Tasks.Web.front"))), tasks);
    assert_eq!(dir.backends(&net(1), "web"), tasks);
}

#[test]
fn a_dnsrr_service_answers_the_active_backends() {
    let dir = service(None);
    let v = view(&[(1, "front", false)]);
    assert_eq!(
        addresses(&reply(&a(&dir, &v, "web"))),
        ips(&["10.0.1.2", "10.0.1.3"])
    );
}

#[test]
fn a_disabled_backend_still_answers_its_own_names() {
    let dir = service(None);
    let v = view(&[(1, "front", false)]);
    assert_eq!(addresses(&reply(&a(&dir, &v, "web.4"))), ips(&["10.0.1.4"]));
    assert_eq!(
        addresses(&reply(&a(&dir, &v, "task-4"))),
        ips(&["10.0.1.4"])
    );
}

#[test]
fn a_dnsrr_service_whose_backends_are_all_disabled_is_unknown() {
    let mut dir = Directory::new();
    let mut r = record("solo", &["10.0.1.5"]);
    r.service = Some("lonely".parse().unwrap());
    r.disabled = true;
    dir.insert(&net(1), "e", "n", r);
    let v = view(&[(1, "front", false)]);
    assert_eq!(a(&dir, &v, "lonely").outcome, Outcome::Forwarded);
    assert_eq!(a(&dir, &v, "tasks.lonely").outcome, Outcome::Forwarded);
}

#[test]
fn aaaa_for_an_ipv4_only_name_is_empty_noerror_not_forwarded() {
    let dir = two_networks();
    let v = view(&[(1, "front", false)]);
    let resolution = ask(&dir, &v, &query("web", RecordType::AAAA), Transport::Udp);
    assert_eq!(resolution.outcome, Outcome::Empty);
    let message = reply(&resolution);
    assert_eq!(message.response_code, ResponseCode::NoError);
    assert!(message.answers.is_empty());
}

#[test]
fn a_for_an_ipv6_only_name_is_empty_and_dual_stack_answers_each_family() {
    let mut dir = Directory::new();
    dir.insert(&net(1), "e6", "n", record("six", &["fd00::6"]));
    dir.insert(
        &net(1),
        "e46",
        "n",
        record("both", &["10.0.1.7", "fd00::7"]),
    );
    let v = view(&[(1, "front", false)]);
    assert_eq!(a(&dir, &v, "six").outcome, Outcome::Empty);
    let aaaa = ask(&dir, &v, &query("both", RecordType::AAAA), Transport::Udp);
    assert_eq!(addresses(&reply(&aaaa)), ips(&["fd00::7"]));
    assert_eq!(addresses(&reply(&a(&dir, &v, "both"))), ips(&["10.0.1.7"]));
}

#[test]
fn mx_and_other_types_for_a_known_name_are_empty_noerror() {
    let dir = two_networks();
    let v = view(&[(1, "front", false)]);
    for qtype in [
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::ANY,
    ] {
        let resolution = ask(&dir, &v, &query("web", qtype), Transport::Udp);
        assert_eq!(resolution.outcome, Outcome::Empty, "{qtype}");
        assert!(reply(&resolution).answers.is_empty());
    }
}

#[test]
fn unknown_names_are_forwarded_unless_every_network_is_internal() {
    let dir = two_networks();
    let external = view(&[(1, "front", true), (2, "back", false)]);
    let resolution = a(&dir, &external, "example.com");
    assert_eq!(
        (resolution.action, resolution.outcome),
        (Action::Forward, Outcome::Forwarded)
    );
    let mx = ask(
        &dir,
        &external,
        &query("example.com", RecordType::MX),
        Transport::Tcp,
    );
    assert_eq!(mx.action, Action::Forward);
    for internal in [view(&[(1, "front", true)]), view(&[])] {
        let resolution = a(&dir, &internal, "example.com");
        assert_eq!(resolution.outcome, Outcome::Internal);
        let message = reply(&resolution);
        assert_eq!(message.response_code, ResponseCode::ServFail);
        assert_eq!(message.id, ID);
    }
}

#[test]
fn local_names_still_answer_on_internal_networks() {
    let dir = two_networks();
    let resolution = a(&dir, &view(&[(1, "front", true)]), "web");
    assert_eq!(resolution.outcome, Outcome::Answered);
}

#[test]
fn other_classes_are_not_local() {
    let dir = two_networks();
    let mut message = Message::from_vec(&query("web", RecordType::A)).unwrap();
    message.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let bytes = message.to_vec().unwrap();
    let resolution = ask(&dir, &view(&[(1, "front", false)]), &bytes, Transport::Udp);
    assert_eq!(resolution.outcome, Outcome::Forwarded);
}

fn ptr(dir: &Directory, view: &SandboxView, ip: &str) -> Resolution {
    let name = Name::from(ip.parse::<IpAddr>().unwrap()).to_ascii();
    ask(dir, view, &query(&name, RecordType::PTR), Transport::Udp)
}

#[test]
fn ptr_for_an_endpoint_answers_sandbox_dot_network() {
    let mut dir = service(Some("10.0.1.100"));
    dir.insert(&net(1), "e6", "n", record("Six", &["fd00::6"]));
    let v = view(&[(1, "Front", false)]);
    let message = reply(&ptr(&dir, &v, "10.0.1.3"));
    let RData::PTR(PTR(target)) = &message.answers[0].data else {
        panic!("not a PTR: {message:?}");
    };
    assert_eq!(target.to_ascii(), "web.3.Front.");
    assert_eq!(message.answers[0].ttl, 600);
    let message = reply(&ptr(&dir, &v, "fd00::6"));
    assert_eq!(message.answers[0].data.to_string(), "Six.Front.");
}

#[test]
fn ptr_for_a_vip_or_an_unseen_network_is_forwarded() {
    let dir = service(Some("10.0.1.100"));
    assert_eq!(
        ptr(&dir, &view(&[(1, "front", false)]), "10.0.1.100").outcome,
        Outcome::Forwarded
    );
    assert_eq!(
        ptr(&dir, &view(&[(2, "back", false)]), "10.0.1.3").outcome,
        Outcome::Forwarded
    );
}

#[test]
fn ptr_for_a_malformed_reverse_name_is_formerr() {
    let dir = two_networks();
    let v = view(&[(1, "front", false)]);
    for name in [
        "1.2.10.in-addr.arpa",
        "x.2.1.10.in-addr.arpa",
        "999.2.1.10.in-addr.arpa",
    ] {
        let resolution = ask(&dir, &v, &query(name, RecordType::PTR), Transport::Udp);
        assert_eq!(resolution.outcome, Outcome::Malformed, "{name}");
        assert_eq!(reply(&resolution).response_code, ResponseCode::FormErr);
    }
}

/// Forty sandboxes sharing the alias `crowd` on network 1.
fn crowd() -> Directory {
    let mut dir = Directory::new();
    for i in 0..40u8 {
        let mut r = record(&format!("member-{i}"), &[&format!("10.0.9.{}", i + 1)]);
        r.aliases = vec!["crowd".parse().unwrap()];
        dir.insert(&net(1), &format!("e{i}"), "n", r);
    }
    dir
}

#[test]
fn udp_answers_are_cut_to_whole_records_with_tc_and_tcp_carries_all_forty() {
    let dir = crowd();
    let v = view(&[(1, "front", false)]);
    let bytes = query("crowd", RecordType::A);
    let udp = ask(&dir, &v, &bytes, Transport::Udp);
    assert_eq!(udp.outcome, Outcome::Truncated);
    let Action::Answer(wire) = &udp.action else {
        panic!("{udp:?}")
    };
    assert!(wire.len() <= UDP_MIN_REPLY, "{} bytes", wire.len());
    let message = reply(&udp);
    assert!(message.truncation);
    assert!(!message.answers.is_empty() && message.answers.len() < 40);
    let tcp = reply(&ask(&dir, &v, &bytes, Transport::Tcp));
    assert!(!tcp.truncation);
    assert_eq!(tcp.answers.len(), 40);
}

#[test]
fn udp_limit_follows_the_query_edns_size_and_the_reply_carries_opt() {
    let dir = crowd();
    let v = view(&[(1, "front", false)]);
    let small = reply(&ask(
        &dir,
        &v,
        &query_with("crowd", RecordType::A, Some(512)),
        Transport::Udp,
    ));
    assert!(small.truncation && small.edns.is_some());
    let large = ask(
        &dir,
        &v,
        &query_with("crowd", RecordType::A, Some(4096)),
        Transport::Udp,
    );
    assert_eq!(large.outcome, Outcome::Answered);
    let large = reply(&large);
    assert_eq!(large.answers.len(), 40);
    assert!(!large.truncation);
    assert_eq!(
        large.edns.map(|e| e.max_payload()),
        Some(crate::REPLY_UDP_PAYLOAD)
    );
}

#[test]
fn an_edns_version_above_zero_gets_badvers() {
    let dir = two_networks();
    let mut message = Message::from_vec(&query_with("web", RecordType::A, Some(1232))).unwrap();
    message.edns.as_mut().unwrap().set_version(1);
    let bytes = message.to_vec().unwrap();
    let resolution = ask(&dir, &view(&[(1, "front", false)]), &bytes, Transport::Udp);
    assert_eq!(resolution.outcome, Outcome::BadVersion);
    // 16 is both BADVERS and BADSIG; hickory decodes it as the latter.
    assert_eq!(u16::from(reply(&resolution).response_code), 16);
    assert_eq!(u16::from(ResponseCode::BADVERS), 16);
}
