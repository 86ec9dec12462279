//! Following a stream in runs: a task reads (and decodes) ahead while the caller applies
//! the run before, and whatever queued up meanwhile comes out as the next run.
//!
//! A follower whose applying is slower than reading then applies long runs, each with one
//! write of its position, while reading costs it no time; one that keeps up with reading
//! (at the tail of the log, or the time-travel builder in a rebuild, see
//! docs/architecture.md) gets runs as short as what has arrived.

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most items the reader hands over at once (it takes whatever is ready, up to this).
const MAX_CHUNK: usize = 4096;
/// Chunks the reader may hold ahead of the caller.
const READ_AHEAD_CHUNKS: usize = 8;
/// Queued chunks join a run up to this many items.
pub const MAX_RUN: usize = 8192;

/// Items in stream order, and the error that ended the stream right after them, if any.
#[derive(Debug)]
pub struct Run<T, E> {
    pub items: Vec<T>,
    pub failure: Option<E>,
}

type Chunk<T, E> = (Vec<T>, Option<E>);

/// A stream read ahead by its own task; see the module docs. Dropping it stops the task.
#[derive(Debug)]
pub struct Runs<T, E> {
    receiver: mpsc::Receiver<Chunk<T, E>>,
    reader: JoinHandle<()>,
}

impl<T: Send + 'static, E: Send + 'static> Runs<T, E> {
    /// Starts reading `stream` ahead. The reader stops at the first error, which ends the
    /// run it belongs to.
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + Unpin + 'static,
    {
        let (sender, receiver) = mpsc::channel(READ_AHEAD_CHUNKS);
        let reader = tokio::spawn(async move {
            let mut chunks = stream.ready_chunks(MAX_CHUNK);
            while let Some(chunk) = chunks.next().await {
                let mut items = Vec::with_capacity(chunk.len());
                let mut failure = None;
                for item in chunk {
                    match item {
                        Ok(item) => items.push(item),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                let stop = failure.is_some();
                if sender.send((items, failure)).await.is_err() || stop {
                    return;
                }
            }
        });
        Self { receiver, reader }
    }

    /// The next run: the next chunk and every chunk queued behind it, up to [`MAX_RUN`]
    /// items. `None` once the stream has ended and everything was handed over.
    pub async fn next(&mut self) -> Option<Run<T, E>> {
        let (mut items, mut failure) = self.receiver.recv().await?;
        while failure.is_none() && items.len() < MAX_RUN {
            let Ok((more, more_failure)) = self.receiver.try_recv() else {
                break;
            };
            items.extend(more);
            failure = more_failure;
        }
        Some(Run { items, failure })
    }
}

impl<T, E> Drop for Runs<T, E> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_queued_behind_a_run_join_the_next_one_in_order() {
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<usize, String>>();
        let mut runs = Runs::new(receiver);
        sender.unbounded_send(Ok(0)).unwrap_or_default();
        let first = runs.next().await.map(|r| r.items);
        assert_eq!(first, Some(vec![0]));
        // Arrives while the caller applies its first run: more than one chunk's worth.
        let backlog = MAX_CHUNK + 100;
        for n in 1..=backlog {
            sender.unbounded_send(Ok(n)).unwrap_or_default();
        }
        // The reader queues the backlog as two chunks; fail rather than wait forever.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while runs.receiver.len() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the reader queued {} chunks", runs.receiver.len()));
        let run = runs.next().await.map(|r| r.items);
        assert_eq!(run, Some((1..=backlog).collect::<Vec<_>>()));
    }

    #[tokio::test]
    async fn an_error_ends_its_run_after_the_items_before_it_and_ends_the_runs() {
        let items: Vec<Result<u32, String>> = vec![Ok(1), Ok(2), Err("lost".into()), Ok(3)];
        let mut runs = Runs::new(futures::stream::iter(items));
        let mut got = Vec::new();
        let mut failure = None;
        while let Some(run) = runs.next().await {
            got.extend(run.items);
            if run.failure.is_some() {
                failure = run.failure;
            }
        }
        assert_eq!(got, vec![1, 2]);
        assert_eq!(failure.as_deref(), Some("lost"));
    }

    #[tokio::test]
    async fn a_long_backlog_comes_out_in_order_in_runs_of_about_max_run() {
        let items: Vec<Result<usize, String>> = (0..3 * MAX_RUN).map(Ok).collect();
        let mut runs = Runs::new(futures::stream::iter(items));
        let mut total = 0;
        while total < 3 * MAX_RUN {
            let Some(run) = runs.next().await else { break };
            assert_eq!(run.items.first().copied(), Some(total));
            // A run stops taking chunks once it holds MAX_RUN items.
            assert!(run.items.len() < MAX_RUN + MAX_CHUNK, "{}", run.items.len());
            total += run.items.len();
        }
        assert_eq!(total, 3 * MAX_RUN);
    }
}
