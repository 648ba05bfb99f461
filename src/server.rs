//! The HTTP/1.1 server loop: the router on hyper, with what a service on
//! the open internet needs and `axum::serve` does not offer.
//!
//! - **Header-read timeout.** A connection must send a whole request head
//!   within `HEADER_READ_TIMEOUT_SECS` of opening (and of its previous
//!   response); a client that sends half a request line and stops is cut
//!   off instead of holding a socket for minutes.
//! - **Idle timeout.** A keep-alive connection with no request in flight
//!   that sends and receives nothing for `IDLE_TIMEOUT_SECS` is closed.
//! - **Shutdown that waits only for work.** On SIGTERM the listener closes;
//!   connections with no request in flight (idle, or still sending a head)
//!   are dropped at once, and those with one finish it (up to the drain
//!   grace period) and then close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The connection timeouts, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    pub fn from_config(config: &crate::config::Config) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains
/// as described in the module documentation; requests still running after
/// `drain_grace` are abandoned.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain_grace: Duration,
) {
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connections so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    stop.clone(),
                ));
            }
            Err(error) => {
                // Out of file descriptors, say: let some connections end.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain_grace, drained).await.is_err() {
        tracing::warn!("requests still running after the drain grace period; stopping anyway");
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(IdleTimeout::new(
        stream,
        limits.idle_timeout,
        Arc::clone(&in_flight),
    ));
    let counter = Arc::clone(&in_flight);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let guard = InFlight::enter(&counter);
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            drop(guard);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            log_connection_end(result);
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Shutting down. Nothing in flight: nothing to wait for.
    if in_flight.load(Ordering::Acquire) == 0 {
        return;
    }
    connection.as_mut().graceful_shutdown();
    log_connection_end(connection.await);
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts, resets and malformed requests are the client's doing.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Counts a request in flight on its connection while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that reports end-of-stream once it has been silent for
/// `idle` with no request in flight: hyper then closes the connection.
///
/// Traffic only records the time; the timer is moved when it fires early,
/// not on every read and write (resetting a timer costs more than reading
/// the clock, and a busy connection reads and writes thousands of times a
/// second).
struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    last_activity: Instant,
    in_flight: Arc<AtomicUsize>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration, in_flight: Arc<AtomicUsize>) -> IdleTimeout {
        IdleTimeout {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            last_activity: Instant::now(),
            in_flight,
        }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Whether the connection has been idle for the whole timeout; if the
    /// timer fired early (there was traffic since it was set), it is moved
    /// to the new end of the idle period and polled again.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let idle_until = self.last_activity + self.idle;
            if Instant::now() >= idle_until {
                return Poll::Ready(());
            }
            self.deadline.as_mut().reset(idle_until);
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if this.in_flight.load(Ordering::Acquire) > 0 {
                    // A handler is working: silence is not idleness.
                    this.touch();
                    return Poll::Pending;
                }
                match this.poll_idle(cx) {
                    // End of stream: hyper closes the connection.
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(count)) if count > 0) {
            this.touch();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, buffers);
        if matches!(written, Poll::Ready(Ok(count)) if count > 0) {
            this.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
