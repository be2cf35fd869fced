//! The accept loop: connections bounded in number, in how long a request may take to
//! arrive, in how long an answer may wait for a client that does not read, and in the
//! size and count of request headers.

use super::ServerLimits;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;

/// The size of hyper's read buffer for a head cap of `max_header_bytes`: room for a
/// head several times over the cap, so that a head over the cap still arrives whole
/// and is answered 431 in the JSON error shape; a head past the buffer gets hyper's
/// own bare 431 and the connection is closed. At least 8 KiB (hyper's minimum).
pub fn read_buffer_bytes(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(8).max(8192)
}

/// Serves `app` on `listener` until `shutdown` completes, under the server's limits:
/// at most `max_connections` connections at once; each closed when a request's head
/// takes longer than `read_timeout` to arrive (or a keep-alive connection idles that
/// long), or when an answer makes no progress for `write_timeout` (a client that does
/// not read); at most `max_headers` headers in a head.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(read_buffer_bytes(limits.max_header_bytes));
    // hyper parses up to 100 headers on the stack; any other count it allocates.
    if limits.max_headers != 100 {
        http.max_headers(limits.max_headers);
    }
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, go on.
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("tdev serve: accept failed: {e}\n").as_bytes(),
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        // A write (or flush) that stays pending this long fails the connection, which
        // hyper then drops: a client that never reads holds no slot for longer.
        let mut io = tokio_io_timeout::TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_timeout));
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(TokioIo::new(Box::pin(io)), service);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = conn.await;
        });
    }
}
