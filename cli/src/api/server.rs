//! The accept loop: connections bounded in number, in how long a request may take to
//! arrive, in how long an answer may wait for a client that does not read, and in the
//! size and count of request headers. When every place is taken and a new connection
//! waits, one served connection gives its place up: of those whose answer has made no
//! progress for a quarter of the write timeout (stalled) and those with no request at
//! work (idle), the one stalled or idle longest. A request is at work from the moment
//! its token is let in (so while its body arrives) until its answer is written.

use super::ServerLimits;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of hyper's read buffer past the head cap: a head up to this much over the cap
/// still arrives whole and is answered 431 in the JSON error shape.
pub const READ_BUFFER_SLACK: usize = 8 * 1024;

/// The size of hyper's read buffer for a head cap of `max_header_bytes`: the cap plus
/// [`READ_BUFFER_SLACK`], so that a connection holds at most that much of a head; a
/// head past the buffer gets hyper's own bare 431 and the connection is closed. At
/// least 8 KiB (hyper's minimum).
pub fn read_buffer_bytes(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_add(READ_BUFFER_SLACK).max(8192)
}

/// How long an answer must make no progress before its connection counts as stalled
/// (and may give its place to a newcomer): a quarter of the write timeout.
pub fn stall_after(write_timeout: Duration) -> Duration {
    write_timeout / 4
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
    /// Requests at work (hyper may read a pipelined one while answering another).
    busy: AtomicUsize,
    /// Bytes were given to the socket and not yet flushed: an answer is being written.
    writing: AtomicBool,
    /// Told to close the connection.
    close: tokio::sync::Notify,
}

/// The served connections, to find the one to close when a new one needs a place.
struct Watches {
    epoch: Instant,
    /// No progress for this long (µs) makes a pending answer stalled.
    stall_after_us: u64,
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
            writing: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&w));
        w
    }

    /// How long (µs) `w` has been stalled or idle, when it may give its place up: its
    /// answer has made no progress for `stall_after_us`, or it has no request at work
    /// and no answer being written.
    fn free_for(&self, w: &Watch, now: u64) -> Option<u64> {
        let stalled = w.stalled_since.load(Ordering::Relaxed);
        if stalled == u64::MAX {
            return None;
        }
        if stalled != 0 && now.saturating_sub(stalled) >= self.stall_after_us {
            return Some(now.saturating_sub(stalled));
        }
        let idle = w.idle_since.load(Ordering::Relaxed);
        let at_work = w.busy.load(Ordering::Relaxed) != 0 || w.writing.load(Ordering::Relaxed);
        (!at_work && idle != 0).then(|| now.saturating_sub(idle))
    }

    /// Closes the connection stalled or idle longest; none when every connection is at
    /// work (or stalled for less than `stall_after_us`). True when one was told to close.
    fn evict(&self) -> bool {
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.now();
        let chosen = list
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|w| self.free_for(&w, now).map(|age| (age, w)))
            .max_by_key(|(age, _)| *age)
            .map(|(_, w)| w);
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
    /// A write (`flushed` false) or a flush returned `r`: pending starts the stall
    /// clock unless it runs; ready is progress. Written bytes are being written until a
    /// flush is ready.
    fn note<R>(&self, r: &Poll<R>, flushed: bool) {
        let s = &self.watch.stalled_since;
        match r {
            Poll::Pending => {
                self.watch.writing.store(true, Ordering::Relaxed);
                if s.load(Ordering::Relaxed) == 0 {
                    s.store(self.watches.now(), Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if s.load(Ordering::Relaxed) != u64::MAX {
                    s.store(0, Ordering::Relaxed);
                }
                let was = self.watch.writing.swap(!flushed, Ordering::Relaxed);
                if flushed && was && self.watch.busy.load(Ordering::Relaxed) == 0 {
                    self.watch
                        .idle_since
                        .store(self.watches.now(), Ordering::Relaxed);
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
        self.note(&r, false);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r, false);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(&r, true);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The service of one connection: keeps its [`Watch`] told of requests at work.
struct Counted {
    inner: hyper_util::service::TowerToHyperService<Router>,
    watch: Arc<Watch>,
    watches: Arc<Watches>,
}

/// The connection a request came on, in the request's extensions: the token guard
/// marks the request at work ([`Work::begin`]) once its token is let in, before its
/// body is read. A request not let in is not at work until its answer is written.
#[derive(Clone)]
pub struct Work {
    watch: Arc<Watch>,
    watches: Arc<Watches>,
}

impl Work {
    /// Marks the request at work until the returned value (and every clone) is
    /// dropped; put it in the answer's extensions to keep it at work while the answer
    /// is written.
    pub fn begin(&self) -> AtWork {
        self.watch.busy.fetch_add(1, Ordering::Relaxed);
        self.watch.idle_since.store(0, Ordering::Relaxed);
        AtWork {
            _busy: Arc::new(Busy {
                watch: self.watch.clone(),
                watches: self.watches.clone(),
            }),
        }
    }
}

/// A request at work (see [`Work::begin`]).
#[derive(Clone)]
pub struct AtWork {
    _busy: Arc<Busy>,
}

/// A request at work on a connection; the connection is idle again once the last
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

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let work = Work {
            watch: self.watch.clone(),
            watches: self.watches.clone(),
        };
        req.extensions_mut().insert(work.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut resp = match answer.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // At work until hyper has taken the whole body (and then while the bytes
            // are flushed, see `Stalls`).
            let at_work = resp
                .extensions_mut()
                .remove::<AtWork>()
                .unwrap_or_else(|| work.begin());
            Ok(resp.map(|inner| {
                axum::body::Body::new(Held {
                    inner,
                    _at_work: at_work,
                })
            }))
        })
    }
}

/// An answer's body that keeps its request at work until it is dropped.
struct Held {
    inner: axum::body::Body,
    _at_work: AtWork,
}

impl hyper::body::Body for Held {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A place for a newcomer: a free one, or else the place of one connection told to
/// close (at most one per newcomer; while none may be closed, it looks again every
/// [`EVICT_POLL`]). None at shutdown.
async fn place(
    slots: &Arc<tokio::sync::Semaphore>,
    watches: &Watches,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let mut evicted = false;
    loop {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Some(p);
        }
        if !evicted {
            evicted = watches.evict();
        }
        tokio::select! {
            p = slots.clone().acquire_owned() => return p.ok(),
            () = tokio::time::sleep(EVICT_POLL), if !evicted => {}
            () = shutdown.as_mut() => return None,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, under the server's limits:
/// at most `max_connections` connections at once; each closed when a request's head
/// takes longer than `read_timeout` to arrive (or a keep-alive connection idles that
/// long), or when an answer makes no progress for `write_timeout` (a client that does
/// not read); at most `max_headers` headers in a head. A connection accepted while
/// every place is taken closes one served connection, the one stalled or idle longest
/// (see the module's doc); when every connection is at work it waits for a place.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let watches = Arc::new(Watches {
        epoch: Instant::now(),
        stall_after_us: u64::try_from(stall_after(limits.write_timeout).as_micros())
            .unwrap_or(u64::MAX),
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
        // A place, or else the place of a stalled or idle connection.
        let Some(permit) = place(&slots, &watches, &mut shutdown).await else {
            return;
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

    fn watches(stall_after_us: u64) -> Watches {
        Watches {
            // an hour ago, so that tests can set times in the past
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .expect("an hour ago"),
            stall_after_us,
            list: Mutex::new(Vec::new()),
        }
    }

    fn at_work(x: &Watch) {
        x.busy.store(1, Ordering::Relaxed);
        x.idle_since.store(0, Ordering::Relaxed);
    }

    /// `now` minus `us`, as a `since` value.
    fn ago(w: &Watches, us: u64) -> u64 {
        w.now().saturating_sub(us).max(1)
    }

    #[test]
    fn the_longest_stalled_connection_is_chosen_once() {
        let w = watches(1000);
        let (a, b, c) = (w.add(), w.add(), w.add());
        for x in [&a, &b, &c] {
            at_work(x);
        }
        assert!(!w.evict(), "all at work, none waits for its client");
        // the ones whose answers wait for their clients go first, longest first
        b.stalled_since.store(ago(&w, 90_000), Ordering::Relaxed);
        c.stalled_since.store(ago(&w, 50_000), Ordering::Relaxed);
        a.busy.store(0, Ordering::Relaxed);
        a.idle_since.store(ago(&w, 10_000), Ordering::Relaxed);
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

    /// A connection at work whose answer has waited `stalled_us`, and one idle for
    /// `idle_us`.
    fn stalled_and_idle(w: &Watches, stalled_us: u64, idle_us: u64) -> (Arc<Watch>, Arc<Watch>) {
        let (stalled, idle) = (w.add(), w.add());
        at_work(&stalled);
        stalled
            .stalled_since
            .store(ago(w, stalled_us), Ordering::Relaxed);
        idle.idle_since.store(ago(w, idle_us), Ordering::Relaxed);
        (stalled, idle)
    }

    #[test]
    fn a_write_pending_for_a_moment_is_at_work_and_ages_are_compared() {
        // stalled after 60 s: nothing here has waited that long
        let w = watches(60_000_000);
        let (_downloading, idle) = stalled_and_idle(&w, 5_000_000, 1_000);
        assert!(w.evict());
        assert_eq!(
            idle.stalled_since.load(Ordering::Relaxed),
            u64::MAX,
            "the idle one goes, not the one whose write was pending for a moment"
        );
        assert!(!w.evict(), "a write pending for less than the stall time");
        // an answer still being written (the handler has returned) is at work
        let written = w.add();
        written.writing.store(true, Ordering::Relaxed);
        written
            .idle_since
            .store(ago(&w, 9_000_000), Ordering::Relaxed);
        assert!(!w.evict(), "an answer being written was taken for idle");

        // stalled after 1 ms: a connection idle longer than another is stalled goes first
        let w = watches(1_000);
        let (stalled, idle) = stalled_and_idle(&w, 2_000_000, 3_000_000_000);
        assert!(w.evict());
        assert_eq!(idle.stalled_since.load(Ordering::Relaxed), u64::MAX);
        assert!(w.evict());
        assert_eq!(stalled.stalled_since.load(Ordering::Relaxed), u64::MAX);
    }

    #[test]
    fn a_newcomer_closes_one_connection_at_most() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let w = watches(1_000);
            let all: Vec<Arc<Watch>> = (0..3).map(|_| w.add()).collect();
            // every place taken by connections that never give theirs back
            let slots = Arc::new(tokio::sync::Semaphore::new(3));
            let _held = slots.clone().acquire_many_owned(3).await.expect("permits");
            // the newcomer waits for half a second (many rounds of EVICT_POLL)
            let mut shutdown = std::pin::pin!(tokio::time::sleep(Duration::from_millis(500)));
            assert!(place(&slots, &w, &mut shutdown).await.is_none());
            let told = all
                .iter()
                .filter(|x| x.stalled_since.load(Ordering::Relaxed) == u64::MAX)
                .count();
            assert_eq!(told, 1, "one newcomer closed {told} connections");
        });
    }

    #[test]
    fn the_read_buffer_is_the_head_cap_and_a_small_slack() {
        assert_eq!(read_buffer_bytes(16 * 1024), 16 * 1024 + READ_BUFFER_SLACK);
        assert_eq!(read_buffer_bytes(16 * 1024 * 1024), 16 * 1024 * 1024 + 8192);
        assert_eq!(read_buffer_bytes(1024), 1024 + 8192);
        assert_eq!(
            stall_after(Duration::from_secs(10)),
            Duration::from_millis(2500)
        );
    }
}
