//! Starting next to the other processes of a deployment: opens retried while the shared
//! streams appear, and the catch-up of the projections before a process reports ready.

use std::time::Duration;

use anyhow::bail;
use backtrack_directory::Directory;
use backtrack_eventlog::EventLog;
use backtrack_snapshotter::Snapshotter;

/// How long a process keeps trying to open its streams and stores at start.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `open` until it succeeds or [`START_DEADLINE`] passes. Processes of one deployment
/// start together and create the shared streams concurrently; on a cluster a stream another
/// process is creating can answer "not found" for a moment, and a node may still be
/// electing its leaders.
pub(super) async fn starting<T, E, F, Fut>(what: &str, mut open: F) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    let mut backoff = Duration::from_millis(100);
    loop {
        match open().await {
            Ok(opened) => return Ok(opened),
            Err(e) => {
                let e: anyhow::Error = e.into();
                if tokio::time::Instant::now() + backoff > deadline {
                    return Err(e.context(format!(
                        "cannot open {what} within {}s",
                        START_DEADLINE.as_secs()
                    )));
                }
                tracing::warn!(error = %format!("{e:#}"), "opening {what} failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Waits until the directory view has folded everything that was in the log at start.
pub(super) async fn catch_up(directory: &Directory) -> anyhow::Result<()> {
    catch_up_view(
        "the directory view",
        directory.log(),
        || directory.position(),
        |last| async move { directory.wait_for(last).await.is_ok() },
    )
    .await
}

/// Waits until the time-travel store has applied everything that was in the log at start.
pub(super) async fn catch_up_snapshotter(snapshotter: &Snapshotter) -> anyhow::Result<()> {
    catch_up_view(
        "the time-travel store",
        snapshotter.log(),
        || snapshotter.position(),
        |last| async move { snapshotter.wait_for(last).await.is_ok() },
    )
    .await
}

/// Waits until `what` (whose position `position` reads) reaches the log's last sequence
/// at start; `wait` waits for a sequence and gives up after a while, which is reported
/// before waiting again, for at most an hour.
async fn catch_up_view<Fut>(
    what: &str,
    log: &EventLog,
    position: impl Fn() -> u64,
    wait: impl Fn(u64) -> Fut,
) -> anyhow::Result<()>
where
    Fut: std::future::Future<Output = bool>,
{
    let last = starting("the event stream's last sequence", || log.state())
        .await?
        .last_sequence;
    if position() < last {
        eprintln!("backtrack: catching up {what} to sequence {last}…");
        let started = std::time::Instant::now();
        while !wait(last).await {
            if started.elapsed() > Duration::from_secs(3600) {
                bail!("{what} did not catch up within an hour");
            }
            eprintln!("backtrack:   at {} of {last}", position());
        }
    }
    Ok(())
}
