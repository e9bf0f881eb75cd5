//! A bare pingora reverse proxy with no MCP awareness: the baseline that shows what Sluice's
//! own work costs on top of the framework it is built on. Used by `bench/tools-call-rps.sh`.
//!
//! usage: plain_pingora LISTEN UPSTREAM   (e.g. 127.0.0.1:18083 127.0.0.1:18081)

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;

struct PlainProxy {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for PlainProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: plain_pingora LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let conf = pingora::server::configuration::ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, PlainProxy { upstream });
    service.add_tcp(&listen);
    service.threads = Some(1);
    server.add_service(service);
    server.run_forever();
}
