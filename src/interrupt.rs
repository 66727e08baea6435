//! Stopping refreshes in flight at a signal (the CLI's Ctrl-C): the [`Interrupter`] says why,
//! and each refresh watches its [`Interrupt`] while it waits on the network.

/// Tells the refreshes in flight to stop, and says why (`SIGINT`).
pub struct Interrupter(tokio::sync::watch::Sender<Option<&'static str>>);

/// What a refresh watches for an [`Interrupter`]'s word. A refresh stops only while it waits
/// on the network (the direct request, the solver): the rest is short, and a feed's write is
/// never cut in half.
#[derive(Clone)]
pub struct Interrupt(tokio::sync::watch::Receiver<Option<&'static str>>);

impl Interrupt {
    pub fn channel() -> (Interrupter, Interrupt) {
        let (sender, receiver) = tokio::sync::watch::channel(None);
        (Interrupter(sender), Interrupt(receiver))
    }

    /// Why the refreshes were told to stop, if they were.
    pub fn fired(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    async fn wait(&self) -> &'static str {
        let mut receiver = self.0.clone();
        let by = receiver.wait_for(Option::is_some).await.ok().and_then(|by| *by);
        match by {
            Some(by) => by,
            // The interrupter is gone: nothing can interrupt any more.
            None => std::future::pending().await,
        }
    }
}

impl Interrupter {
    pub fn interrupt(&self, by: &'static str) {
        let _ = self.0.send(Some(by));
    }
}

/// Runs `work` unless `interrupt` fires first, which is then `Err` with its word.
pub async fn interruptible<T>(interrupt: Option<&Interrupt>, work: impl Future<Output = T>) -> Result<T, &'static str> {
    match interrupt {
        None => Ok(work.await),
        Some(interrupt) => tokio::select! {
            biased;
            by = interrupt.wait() => Err(by),
            done = work => Ok(done),
        },
    }
}
