//! A loopback TCP relay between an importer and its exporter whose link the test can cut (every
//! connection closed, new ones refused) and restore: a network outage without namespaces.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The relay; stops (its threads end) when dropped.
pub struct Proxy {
    /// Port importers connect to.
    pub port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Bumped at each cut: connections of an older generation close.
    generation: Arc<AtomicU64>,
}

impl Proxy {
    /// Relays connections on a new loopback port to `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, s, g) = (cut.clone(), stop.clone(), generation.clone());
        std::thread::spawn(move || {
            // SeqCst everywhere here: a test helper, clarity over speed.
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => {
                        if c.load(Ordering::SeqCst) {
                            drop(down); // the link is down: refuse
                            continue;
                        }
                        let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        let mine = g.load(Ordering::SeqCst);
                        pump(&down, &up, &g, &s, mine);
                        pump(&up, &down, &g, &s, mine);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        });
        Proxy {
            port,
            cut,
            stop,
            generation,
        }
    }

    /// Cuts the link: closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread until either closes or the generation moves on.
fn pump(from: &TcpStream, to: &TcpStream, g: &Arc<AtomicU64>, stop: &Arc<AtomicBool>, mine: u64) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    let (g, stop) = (g.clone(), stop.clone());
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while g.load(Ordering::SeqCst) == mine && !stop.load(Ordering::SeqCst) {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
