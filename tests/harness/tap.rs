//! A byte-counting TCP relay: put between the gateway and a real upstream, it shows how much of
//! a request has reached the upstream side while the client is still sending it. It relays
//! bytes unchanged both ways and is not an MCP peer of any kind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The relay; dropping it stops accepting (open connections end with their peers).
pub struct Tap {
    /// Where the gateway connects.
    pub addr: SocketAddr,
    toward_upstream: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Tap {
    /// A relay on a free loopback port in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let addr = listener.local_addr().expect("tap addr");
        let toward_upstream = Arc::new(AtomicUsize::new(0));
        let counter = toward_upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(relay(client, server, counter));
            }
        });
        Tap {
            addr,
            toward_upstream,
            accept,
        }
    }

    /// Bytes relayed toward the upstream so far, over every connection.
    pub fn toward_upstream(&self) -> usize {
        self.toward_upstream.load(Ordering::SeqCst)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, counter: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            counter.fetch_add(n, Ordering::SeqCst);
        }
        let _ = server_write.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}
