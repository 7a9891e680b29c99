//! Addresses and routes over rtnetlink.
//!
//! Adding an address that is there succeeds; deleting one that is not succeeds. Routes have
//! replace semantics (`ip route replace`). Listings show what weft manages: global-scope
//! addresses (not IPv6 link-local), and main-table routes that are not kernel-made (connected
//! prefixes, local and broadcast routes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{AddressMessageBuilder, RouteMessageBuilder};

use crate::error::{Error, Result, errno};
use crate::link::Nl;
use crate::model::Route;
use crate::names::IfName;

const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const EADDRNOTAVAIL: i32 = 99;

impl Nl<'_> {
    /// Adds `addr` to `dev`; an address already there is success.
    pub async fn add_address(&self, dev: &IfName, addr: IpNet) -> Result<()> {
        let index = self.index_of(dev).await?;
        let req = self.h.address().add(index, addr.addr(), addr.prefix_len());
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(source) => Err(Error::AddAddress {
                addr,
                dev: dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }

    /// Removes `addr` from `dev`; an absent address is success.
    pub async fn delete_address(&self, dev: &IfName, addr: IpNet) -> Result<()> {
        let index = self.index_of(dev).await?;
        let msg = address_message(index, addr);
        match self.h.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
            Err(source) => Err(Error::DeleteAddress {
                addr,
                dev: dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }

    /// Global-scope addresses of `dev`.
    pub async fn list_addresses(&self, dev: &IfName) -> Result<Vec<IpNet>> {
        let index = self.index_of(dev).await?;
        let req = self
            .h
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let msgs: Vec<AddressMessage> =
            req.try_collect()
                .await
                .map_err(|source| Error::ListAddresses {
                    dev: dev.clone(),
                    ns: self.ns.clone(),
                    source: source.into(),
                })?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == index && m.header.scope == AddressScope::Universe)
            .filter_map(parse_address)
            .collect())
    }

    /// Adds or replaces `route` in the main table.
    pub async fn replace_route(&self, route: &Route) -> Result<()> {
        route.validate()?;
        let msg = self.route_message(route).await?;
        let req = self.h.route().add(msg).replace();
        req.execute().await.map_err(|source| Error::ReplaceRoute {
            route: route.to_string(),
            ns: self.ns.clone(),
            source: source.into(),
        })
    }

    /// Deletes `route`; an absent route is success.
    pub async fn delete_route(&self, route: &Route) -> Result<()> {
        route.validate()?;
        let msg = self.route_message(route).await?;
        match self.h.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ESRCH) => Ok(()),
            Err(source) => Err(Error::DeleteRoute {
                route: route.to_string(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }

    /// Main-table routes that were not made by the kernel, IPv4 then IPv6.
    pub async fn list_routes(&self) -> Result<Vec<Route>> {
        let names = self.names_by_index().await?;
        let err = |source: rtnetlink::Error| Error::ListRoutes {
            ns: self.ns.clone(),
            source: source.into(),
        };
        let mut routes = Vec::new();
        let v4 = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let v6 = RouteMessageBuilder::<Ipv6Addr>::new().build();
        for query in [v4, v6] {
            let msgs: Vec<RouteMessage> = self
                .h
                .route()
                .get(query)
                .execute()
                .try_collect()
                .await
                .map_err(err)?;
            routes.extend(msgs.iter().filter(|m| is_managed(m)).filter_map(|m| {
                let dev = route_oif(m).and_then(|i| names.get(&i).cloned());
                parse_route(m, dev)
            }));
        }
        Ok(routes)
    }

    async fn route_message(&self, route: &Route) -> Result<RouteMessage> {
        let dst = route.destination;
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(|_| invalid(route, "bad destination"))?;
        if let Some(gw) = route.gateway {
            b = b.gateway(gw).map_err(|_| invalid(route, "bad gateway"))?;
        } else {
            b = b.scope(RouteScope::Link);
        }
        if let Some(dev) = &route.dev {
            b = b.output_interface(self.index_of(dev).await?);
        }
        Ok(b.build())
    }
}

fn invalid(route: &Route, reason: &'static str) -> Error {
    Error::InvalidRoute {
        route: route.to_string(),
        reason,
    }
}

fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    match addr.addr() {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, addr.prefix_len())
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(ip, addr.prefix_len())
            .build(),
    }
}

fn parse_address(msg: &AddressMessage) -> Option<IpNet> {
    // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 carries only IFA_ADDRESS.
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn is_managed(msg: &RouteMessage) -> bool {
    route_table(msg) == u32::from(RouteHeader::RT_TABLE_MAIN)
        && msg.header.kind == RouteType::Unicast
        && msg.header.protocol != RouteProtocol::Kernel
        && msg.header.protocol != RouteProtocol::Ra
}

fn route_oif(msg: &RouteMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn parse_route(msg: &RouteMessage, dev: Option<IfName>) -> Option<Route> {
    let mut dst = None;
    let mut gateway = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match msg.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let destination = IpNet::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(Route {
        destination,
        gateway,
        dev,
    })
}
