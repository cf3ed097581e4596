//! Ephemeral loopback addresses for tests (test side).

use std::net::{SocketAddr, TcpListener};

/// An address on 127.0.0.1 that was free a moment ago: binds port 0, reads the port, drops the socket.
///
/// Nothing listens there afterwards, so connecting to it is refused until someone binds it. Prefer
/// passing an already-bound listener where the code under test accepts one: another process may
/// take the port between this call and the next bind.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
}
