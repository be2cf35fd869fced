//! The accept loop: connections bounded in number, in how long a request may take to
//! arrive, in how long an answer may wait for a client that does not read, and in the
//! size and count of request headers. When every place is taken and a new connection
//! waits, a served connection gives its place up: first the one whose answer has waited
//! longest for its client to read, else the one idle longest (no request in progress).

use super::ServerLimits;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The size of hyper's read buffer for a head cap of `max_header_bytes`: room for a
/// head several times over the cap, so that a head over the cap still arrives whole
/// and is answered 431 in the JSON error shape; a head past the buffer gets hyper's
/// own bare 431 and the connection is closed. At least 8 KiB (hyper's minimum).
pub fn read_buffer_bytes(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(8).max(8192)
}

/// How often a connection waiting for a place looks again for one to close.
const EVICT_POLL: Duration = Duration::from_millis(20);

/// What the accept loop knows of a served connection.
struct Watch {
    /// Since when (µs after the server's start, plus one) its answer has waited for
    /// the client to read; 0 while it is not waiting, `u64::MAX` once told to close.
    stalled_since: AtomicU64,
    /// Since when (as above) no request has been in progress; 0 while one is.
    idle_since: AtomicU64,
    /// Requests in progress (hyper may read a pipelined one while answering another).
    busy: AtomicUsize,
    /// Told to close the connection.
    close: tokio::sync::Notify,
}

/// The served connections, to find the one to close when a new one needs a place.
struct Watches {
    epoch: Instant,
    list: Mutex<Vec<Weak<Watch>>>,
}

impl Watches {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn add(&self) -> Arc<Watch> {
        let w = Arc::new(Watch {
            stalled_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(self.now()),
            busy: AtomicUsize::new(0),
            close: tokio::sync::Notify::new(),
        });
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&w));
        w
    }

    /// Closes the connection whose answer has waited longest for its client, or else
    /// the one idle longest; none when every connection is at work. True when one was
    /// told to close.
    fn evict(&self) -> bool {
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<Arc<Watch>> = list
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|w| w.stalled_since.load(Ordering::Relaxed) != u64::MAX)
            .collect();
        let longest = |since: fn(&Watch) -> u64| {
            live.iter()
                .map(|w| (since(w), w))
                .filter(|(t, _)| *t != 0)
                .min_by_key(|(t, _)| *t)
                .map(|(_, w)| w.clone())
        };
        let chosen = longest(|w| w.stalled_since.load(Ordering::Relaxed)).or_else(|| {
            longest(|w| {
                if w.busy.load(Ordering::Relaxed) == 0 {
                    w.idle_since.load(Ordering::Relaxed)
                } else {
                    0
                }
            })
        });
        match chosen {
            Some(w) => {
                // Marked, so that it is not chosen again while it closes.
                w.stalled_since.store(u64::MAX, Ordering::Relaxed);
                w.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's socket that tells its [`Watch`] when a write waits for the client.
struct Stalls<T> {
    io: T,
    watch: Arc<Watch>,
    watches: Arc<Watches>,
}

impl<T> Stalls<T> {
    fn note<R>(&self, r: &Poll<R>) {
        let s = &self.watch.stalled_since;
        match r {
            Poll::Pending => {
                if s.load(Ordering::Relaxed) == 0 {
                    s.store(self.watches.now(), Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if s.load(Ordering::Relaxed) != u64::MAX {
                    s.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalls<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalls<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The service of one connection: keeps its [`Watch`] told of requests in progress.
struct Counted {
    inner: hyper_util::service::TowerToHyperService<Router>,
    watch: Arc<Watch>,
    watches: Arc<Watches>,
}

/// A request in progress on a connection; the connection is idle again once the last
/// one is dropped.
struct Busy {
    watch: Arc<Watch>,
    watches: Arc<Watches>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.watch.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.watch
                .idle_since
                .store(self.watches.now(), Ordering::Relaxed);
        }
    }
}

type Answer = axum::response::Response;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Counted {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.watch.busy.fetch_add(1, Ordering::Relaxed);
        self.watch.idle_since.store(0, Ordering::Relaxed);
        let busy = Busy {
            watch: self.watch.clone(),
            watches: self.watches.clone(),
        };
        let answer = self.inner.call(req);
        Box::pin(async move {
            let r = answer.await;
            drop(busy);
            r
        })
    }
}

/// Serves `app` on `listener` until `shutdown` completes, under the server's limits:
/// at most `max_connections` connections at once; each closed when a request's head
/// takes longer than `read_timeout` to arrive (or a keep-alive connection idles that
/// long), or when an answer makes no progress for `write_timeout` (a client that does
/// not read); at most `max_headers` headers in a head. A connection accepted while
/// every place is taken closes the served connection whose answer has waited longest
/// for its client, or else the one idle longest; when every connection is at work it
/// waits for a place.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let watches = Arc::new(Watches {
        epoch: Instant::now(),
        list: Mutex::new(Vec::new()),
    });
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
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, go on.
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("tdev serve: accept failed: {e}\n").as_bytes(),
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        // A place, or else the place of a connection whose client does not read.
        let permit = loop {
            if let Ok(p) = slots.clone().try_acquire_owned() {
                break p;
            }
            watches.evict();
            tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => return,
                },
                () = tokio::time::sleep(EVICT_POLL) => {}
                () = &mut shutdown => return,
            }
        };
        let _ = tcp.set_nodelay(true);
        let watch = watches.add();
        let stalls = Stalls {
            io: tcp,
            watch: watch.clone(),
            watches: watches.clone(),
        };
        // A write (or flush) that stays pending this long fails the connection, which
        // hyper then drops: a client that never reads holds no place for longer.
        let mut io = tokio_io_timeout::TimeoutStream::new(stalls);
        io.set_write_timeout(Some(limits.write_timeout));
        let service = Counted {
            inner: hyper_util::service::TowerToHyperService::new(app.clone()),
            watch: watch.clone(),
            watches: watches.clone(),
        };
        let conn = http.serve_connection(TokioIo::new(Box::pin(io)), service);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = conn => {}
                () = watch.close.notified() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_stalled_connection_is_chosen_once() {
        let w = Watches {
            epoch: Instant::now(),
            list: Mutex::new(Vec::new()),
        };
        let (a, b, c) = (w.add(), w.add(), w.add());
        for x in [&a, &b, &c] {
            x.busy.store(1, Ordering::Relaxed);
            x.idle_since.store(0, Ordering::Relaxed);
        }
        assert!(!w.evict(), "all at work, none waits for its client");
        // the ones whose answers wait for their clients go first, longest first
        b.stalled_since.store(5, Ordering::Relaxed);
        c.stalled_since.store(9, Ordering::Relaxed);
        a.busy.store(0, Ordering::Relaxed);
        a.idle_since.store(1, Ordering::Relaxed);
        assert!(w.evict());
        assert_eq!(b.stalled_since.load(Ordering::Relaxed), u64::MAX);
        assert!(w.evict());
        assert_eq!(c.stalled_since.load(Ordering::Relaxed), u64::MAX);
        // then the idle one
        assert!(w.evict());
        assert_eq!(a.stalled_since.load(Ordering::Relaxed), u64::MAX);
        assert!(!w.evict(), "each is told once");
        drop((b, c));
        let _d = w.add();
        assert_eq!(
            w.list.lock().expect("lock").len(),
            2,
            "closed ones are forgotten"
        );
    }
}
