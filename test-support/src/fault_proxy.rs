//! A TCP proxy on loopback between the code under test and PostgreSQL that injects network
//! faults: forward, freeze (stop forwarding without closing), slow (delay every chunk),
//! cut (close the connections now) and refuse (close new connections at once).
//!
//! Connections are told apart by the `application_name` of their startup packet: the
//! registry listener's (`diesel_tenancy_listener`) or any other (the pool's), so a fault
//! can hit the change feed alone.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Which connections a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// The registry listener's connections.
    Listener,
    /// Every other connection.
    Others,
}

/// How the proxy treats a class of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Forward,
    /// Stop forwarding in both directions; keep the sockets open.
    Freeze,
    /// Delay every chunk by this long.
    Slow(Duration),
    /// Close new connections right after their startup packet.
    Refuse,
    /// Forward what the client sends; hold back what the server answers (until the
    /// fault changes), so a test sees what a client sent before it read any reply.
    HoldReplies,
}

#[derive(Default)]
struct State {
    faults: HashMap<Who, Fault>,
    open: Vec<(Who, TcpStream, TcpStream)>,
    /// Bumped by `cut`, so pumps waiting out a freeze notice.
    cuts: u64,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl FaultProxy {
    /// A proxy to `target_port` on 127.0.0.1, forwarding everything.
    pub fn start(target_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || connection(client, target_port, &shared));
            }
        });
        FaultProxy { port, state }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"));
        format!(
            "{scheme}://{}127.0.0.1:{}{tail}",
            user.unwrap_or_default(),
            self.port
        )
    }

    /// Applies `fault` to `who`'s connections, open and new.
    pub fn set(&self, who: Who, fault: Fault) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap().faults.insert(who, fault);
        wake.notify_all();
    }

    /// Closes `who`'s open connections now.
    pub fn cut(&self, who: Who) {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap();
        state.cuts += 1;
        state.open.retain(|(class, a, b)| {
            if *class != who {
                return true;
            }
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
            false
        });
        wake.notify_all();
    }

    /// Open connections of `who`.
    pub fn open(&self, who: Who) -> usize {
        let state = self.state.0.lock().unwrap();
        state
            .open
            .iter()
            .filter(|(class, ..)| *class == who)
            .count()
    }
}

fn fault_of(state: &State, who: Who) -> Fault {
    state.faults.get(&who).copied().unwrap_or(Fault::Forward)
}

fn connection(mut client: TcpStream, target: u16, shared: &Arc<(Mutex<State>, Condvar)>) {
    let Some(startup) = read_startup(&mut client) else {
        return;
    };
    let who = if contains(&startup, b"application_name\0diesel_tenancy_listener\0") {
        Who::Listener
    } else {
        Who::Others
    };
    if fault_of(&shared.0.lock().unwrap(), who) == Fault::Refuse {
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    if server.write_all(&startup).is_err() {
        return;
    }
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
        shared.0.lock().unwrap().open.push((who, c3, s3));
    }
    let back = Arc::clone(shared);
    std::thread::spawn(move || pump(s2, c2, who, true, &back));
    pump(client, server, who, false, shared);
}

/// The client's first message: a length-prefixed startup packet (or an SSL/GSS request,
/// forwarded the same way).
fn read_startup(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    client.read_exact(&mut len).ok()?;
    let total = u32::from_be_bytes(len) as usize;
    if !(8..=10_000).contains(&total) {
        return None;
    }
    let mut packet = vec![0u8; total];
    packet[..4].copy_from_slice(&len);
    client.read_exact(&mut packet[4..]).ok()?;
    Some(packet)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Copies `from` to `to`, chunk by chunk, obeying the current fault of `who`; `replies`:
/// this is the server-to-client direction.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    who: Who,
    replies: bool,
    shared: &Arc<(Mutex<State>, Condvar)>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (lock, wake) = &**shared;
        let mut state = lock.lock().unwrap();
        let cuts = state.cuts;
        let held =
            |fault: Fault| fault == Fault::Freeze || (replies && fault == Fault::HoldReplies);
        while held(fault_of(&state, who)) && state.cuts == cuts {
            state = wake.wait(state).unwrap();
        }
        let fault = fault_of(&state, who);
        drop(state);
        if let Fault::Slow(delay) = fault {
            std::thread::sleep(delay);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
