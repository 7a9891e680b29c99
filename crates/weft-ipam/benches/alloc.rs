//! Allocation benchmark: fill a pool with `Any` requests, then release every address.
//!
//! Cases: an IPv4 /16 (65 534 addresses) in serial and in lowest-free mode, an IPv6 /64 filled
//! with 65 534 addresses, and, as an in-run reference, a plain bitmap doing the same lowest-free
//! work on a /16 (what a naive allocator costs). Prints median and p99 per cycle and ratios.
//! Run with `cargo bench -p weft-ipam`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use weft_ipam::{AddressRequest, AddressSpace, Ipam, IpamConfig, PoolRequest};

const RUNS: usize = 30;
const ADDRESSES: usize = 65_534;

/// Creates the pool, allocates `ADDRESSES` addresses, releases them all; returns the time
/// spent allocating and releasing.
fn cycle(subnet: &str, serial: bool) -> Duration {
    let mut ipam = Ipam::new(IpamConfig {
        local: vec![],
        global: vec![],
    })
    .unwrap();
    let req = PoolRequest::explicit(AddressSpace::Local, subnet.parse().unwrap());
    let id = ipam.request_pool(&req).unwrap();
    let mut got: Vec<IpAddr> = Vec::with_capacity(ADDRESSES);
    let start = Instant::now();
    for _ in 0..ADDRESSES {
        got.push(
            ipam.request_address(&id, AddressRequest::Any { serial })
                .unwrap(),
        );
    }
    for ip in &got {
        ipam.release_address(&id, *ip).unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(ipam.pool_info(&id).unwrap().allocated, 0);
    black_box(got);
    elapsed
}

/// The reference: a bitmap with a lowest-free word scan, same work as `cycle` on a /16.
fn bitmap_cycle() -> Duration {
    let mut words = vec![0u64; 65_536 / 64];
    words[0] |= 1; // network address
    words[1023] |= 1 << 63; // broadcast address
    let mut got = Vec::with_capacity(ADDRESSES);
    let start = Instant::now();
    for _ in 0..ADDRESSES {
        let w = words.iter().position(|w| *w != u64::MAX).unwrap();
        let bit = (!words[w]).trailing_zeros() as usize;
        words[w] |= 1 << bit;
        got.push(w * 64 + bit);
    }
    for &o in &got {
        words[o / 64] &= !(1 << (o % 64));
    }
    let elapsed = start.elapsed();
    black_box((got, words));
    elapsed
}

/// Median and p99 of `RUNS` measurements, in milliseconds.
fn measure(mut f: impl FnMut() -> Duration) -> (f64, f64) {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = (RUNS * 99).div_ceil(100) - 1;
    (ms(times[RUNS / 2]), ms(times[p99]))
}

fn report(name: &str, (median, p99): (f64, f64)) {
    let per_address_ns = median * 1e6 / ADDRESSES as f64;
    println!(
        "{name:<44} median {median:7.2} ms  p99 {p99:7.2} ms  ({per_address_ns:5.0} ns per address, alloc+release)"
    );
}

fn main() {
    println!("{RUNS} runs each; one cycle = allocate {ADDRESSES} addresses, then release them all");
    let serial = measure(|| cycle("198.19.0.0/16", true));
    let lowest = measure(|| cycle("198.19.0.0/16", false));
    let v6 = measure(|| cycle("2001:db8::/64", true));
    let bitmap = measure(bitmap_cycle);
    report("ipv4 /16, serial", serial);
    report("ipv4 /16, lowest-free", lowest);
    report("ipv6 /64, serial, 65534 addresses", v6);
    report("reference: plain bitmap /16, lowest-free", bitmap);
    println!("ratios of medians (same run):");
    println!(
        "  lowest-free / serial (v4)      {:.2}",
        lowest.0 / serial.0
    );
    println!("  ipv6 /64 / ipv4 /16 (serial)   {:.2}", v6.0 / serial.0);
    println!(
        "  serial v4 / plain bitmap       {:.2}",
        serial.0 / bitmap.0
    );
    let target_ms = 20.0;
    let verdict = if serial.1 < target_ms {
        "met"
    } else {
        "MISSED"
    };
    println!("target: ipv4 /16 serial cycle under {target_ms} ms at p99: {verdict}");
}
