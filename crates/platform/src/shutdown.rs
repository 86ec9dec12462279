//! Cooperative shutdown: one [`ShutdownTrigger`] fires, every [`Shutdown`] clone notices.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Fires the shutdown. Clones share the same shutdown.
///
/// Dropping every clone without calling [`trigger`](Self::trigger) also counts as a shutdown,
/// so that a crashed owner never leaves servers running forever.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    sender: Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    /// Starts the shutdown; later calls do nothing.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Another listener for this trigger's shutdown.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }
}

/// Listens for the shutdown; cheap to clone and hand to every task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new shutdown, not yet triggered.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (
            ShutdownTrigger {
                sender: Arc::new(sender),
            },
            Shutdown { receiver },
        )
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every trigger was dropped, which counts as a shutdown.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

/// The restarts of a follower (a reader of a stream that only returns when it fails: the
/// stream, a bucket or the server went away): why it stopped goes to the log, and the next
/// start waits `first`, doubling up to `most`, unless the shutdown starts meanwhile.
///
/// ```text
/// let mut restarts = Restarts::new(&shutdown, "projector lost the stream", first, most);
/// loop {
///     let result = tokio::select! { r = follow(..) => r, () = shutdown.wait() => break };
///     if !restarts.after(result).await { break; }
/// }
/// ```
#[derive(Debug)]
pub struct Restarts {
    shutdown: Shutdown,
    what: String,
    wait: Duration,
    most: Duration,
}

impl Restarts {
    pub fn new(
        shutdown: &Shutdown,
        what: impl Into<String>,
        first: Duration,
        most: Duration,
    ) -> Self {
        Self {
            shutdown: shutdown.clone(),
            what: what.into(),
            wait: first,
            most,
        }
    }

    /// After the follower returned `result`: logs an error with what stopped, then waits
    /// before the next start. `false` when the shutdown started: do not start again.
    pub async fn after<E: std::fmt::Display>(&mut self, result: Result<(), E>) -> bool {
        if let Err(e) = result {
            tracing::warn!(error = %e, "{}; resuming", self.what);
        }
        let go_on = tokio::select! {
            () = tokio::time::sleep(self.wait) => true,
            () = self.shutdown.wait() => false,
        };
        self.wait = (self.wait * 2).min(self.most);
        go_on
    }
}

/// Resolves on the first SIGTERM or SIGINT.
///
/// Fails only if the signal handlers cannot be installed.
pub async fn terminate_signal() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_clone() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        let late = trigger.subscribe();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(async move { other.wait().await });
        trigger.trigger();
        waiter.await.expect("waiter finished");
        shutdown.wait().await;
        late.wait().await;
        assert!(shutdown.is_triggered());
        assert!(late.is_triggered());
    }

    #[tokio::test]
    async fn wait_after_trigger_returns_at_once() {
        let (trigger, shutdown) = Shutdown::new();
        trigger.trigger();
        trigger.trigger();
        shutdown.wait().await;
        assert!(shutdown.clone().is_triggered());
    }

    #[tokio::test]
    async fn dropping_every_trigger_counts_as_shutdown() {
        let (trigger, shutdown) = Shutdown::new();
        let copy = trigger.clone();
        drop(trigger);
        assert!(!shutdown.is_triggered());
        drop(copy);
        assert!(shutdown.is_triggered());
        shutdown.wait().await;
    }

    #[tokio::test]
    async fn restarts_wait_longer_each_time_and_stop_at_the_shutdown() {
        use super::Restarts;
        use std::time::Duration;

        let (trigger, shutdown) = Shutdown::new();
        let ms = Duration::from_millis;
        let mut restarts = Restarts::new(&shutdown, "test follower", ms(5), ms(12));
        assert!(restarts.after(Err("the stream went away")).await);
        assert_eq!(restarts.wait, ms(10));
        assert!(restarts.after(Ok::<(), String>(())).await);
        assert_eq!(restarts.wait, ms(12), "doubling stops at the most");
        // A shutdown ends the wait at once, however long it is, and says stop.
        let mut long = Restarts::new(&shutdown, "test follower", Duration::from_secs(3600), ms(1));
        trigger.trigger();
        let stopped =
            tokio::time::timeout(Duration::from_secs(10), long.after(Ok::<(), String>(())))
                .await
                .expect("the wait ends with the shutdown");
        assert!(!stopped);
    }
}
