//! Where log lines go: a shared buffer that a background thread writes to
//! stdout or stderr every few milliseconds.
//!
//! Writing each line from the thread that logged it costs a system call
//! and a lock on the stream per request (a third of the time of a cached
//! read, measured), and handing each line to a writer thread over a
//! channel costs a wake-up per line, which measured no better. Here a
//! request appends its formatted line to a buffer under a short lock; the
//! writer thread takes the whole buffer every [`FLUSH_INTERVAL`] (or as
//! soon as it holds [`EAGER_BYTES`]) and writes it at once. Lines stay in
//! order and reach the stream within moments. Should the writer fall
//! behind, a logger that finds [`MAX_BYTES`] waiting writes them itself,
//! so memory stays bounded and nothing is dropped.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Longest a line waits in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// A buffer this full wakes the writer at once.
const EAGER_BYTES: usize = 256 * 1024;
/// A buffer this full is written by the logger that finds it so.
const MAX_BYTES: usize = 8 * 1024 * 1024;

struct Pending {
    bytes: Vec<u8>,
}

struct Shared {
    pending: Mutex<Pending>,
    filled: Condvar,
    /// Where batches go; its lock also keeps batches in order.
    stream: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes out everything buffered so far. A failed write (closed
    /// stdout) loses those lines; nothing better to do with them, and the
    /// service must keep serving.
    fn write_out(&self) {
        let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = { std::mem::take(&mut self.lock().bytes) };
        if batch.is_empty() {
            return;
        }
        let _ = stream.write_all(&batch).and_then(|()| stream.flush());
    }
}

/// A `MakeWriter` for `tracing_subscriber`: each event's formatted line
/// is appended to the shared buffer.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Writes every pending line when dropped; keep it until the process ends.
#[must_use = "buffered log lines are lost unless the guard is dropped at exit"]
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl LogSink {
    /// Starts the writer thread for stderr (`to_stderr`) or stdout.
    pub fn start(to_stderr: bool) -> std::io::Result<(LogSink, LogGuard)> {
        let stream: Box<dyn Write + Send> = if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        Self::start_writing_to(stream)
    }

    /// Starts the writer thread for any stream.
    pub fn start_writing_to(stream: Box<dyn Write + Send>) -> std::io::Result<(LogSink, LogGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { bytes: Vec::new() }),
            filled: Condvar::new(),
            stream: Mutex::new(stream),
        });
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || {
                loop {
                    {
                        let pending = writer.lock();
                        let _ =
                            writer
                                .filled
                                .wait_timeout_while(pending, FLUSH_INTERVAL, |pending| {
                                    pending.bytes.len() < EAGER_BYTES
                                });
                    }
                    writer.write_out();
                }
            })?;
        Ok((
            LogSink {
                shared: Arc::clone(&shared),
            },
            LogGuard { shared },
        ))
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.write_out();
    }
}

/// One event's line, appended as it is written.
pub struct LineWriter {
    shared: Arc<Shared>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let size = {
            let mut pending = self.shared.lock();
            pending.bytes.extend_from_slice(bytes);
            pending.bytes.len()
        };
        if size >= MAX_BYTES {
            self.shared.write_out();
        } else if size >= EAGER_BYTES {
            self.shared.filled.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tracing_subscriber::fmt::MakeWriter;

    /// A stream the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_reach_the_stream_in_order_without_a_flush() {
        let captured = Captured::default();
        let (sink, _guard) = LogSink::start_writing_to(Box::new(captured.clone())).unwrap();
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        for n in 0..100 {
            sink.make_writer()
                .write_all(format!("line {n}\n").as_bytes())
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while captured.text() != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(captured.text(), expected);
    }

    #[test]
    fn dropping_the_guard_writes_what_is_pending() {
        let captured = Captured::default();
        let (sink, guard) = LogSink::start_writing_to(Box::new(captured.clone())).unwrap();
        sink.make_writer().write_all(b"last words\n").unwrap();
        drop(guard);
        assert_eq!(captured.text(), "last words\n");
    }

    #[test]
    fn a_logger_that_finds_the_buffer_full_writes_it_itself() {
        let captured = Captured::default();
        let (sink, _guard) = LogSink::start_writing_to(Box::new(captured.clone())).unwrap();
        // One write past the bound is on the stream when write returns,
        // whatever the writer thread is doing.
        let line = vec![b'x'; MAX_BYTES];
        sink.make_writer().write_all(&line).unwrap();
        assert_eq!(captured.0.lock().unwrap().len(), MAX_BYTES);
    }
}
