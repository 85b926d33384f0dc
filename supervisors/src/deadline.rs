//! Call deadlines without a runtime timer per call.
//!
//! A call that waits for its reply needs waking at its deadline. A tokio
//! timer per call costs an entry in the runtime's timer wheel, put in and
//! taken out again under the wheel's lock, about 150 ns, while the
//! exchange itself costs about as much. Almost every call is answered
//! long before its deadline, so a call with a long timeout waits in the
//! node's [`Deadlines`] instead: a short list that the node's ticking task
//! ([`TICK`]) looks through. When a deadline comes within reach of the
//! next ticks, the tick wakes the call, which then arms an exact tokio
//! timer for the time left. A timeout therefore fires when it is due,
//! not at a tick, and a call with a timeout of a few ticks or less arms
//! the tokio timer at once.
//!
//! # Limitations
//!
//! If the runtime is so busy that the ticking task runs more than a tick
//! late, a call is woken late and times out late by as much (a runtime
//! timer would fire late in the same situation).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

/// How often the node's task ticks and looks through the deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// A deadline this close (or closer) gets an exact timer: the ticks could
/// be one late, and the call must be woken before its deadline.
const REACH: Duration = Duration::from_millis(1500);

/// The waiting calls of one node.
#[derive(Default)]
pub(crate) struct Deadlines {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

struct Entry {
    deadline: Instant,
    waker: Waker,
    /// The tick woke this call: it should arm its exact timer.
    due: bool,
}

impl Deadlines {
    fn insert(&self, deadline: Instant, waker: &Waker) -> usize {
        let entry = Entry {
            deadline,
            waker: waker.clone(),
            due: false,
        };
        let mut slots = self.slots.lock();
        match slots.free.pop() {
            Some(key) => {
                slots.entries[key] = Some(entry);
                key
            }
            None => {
                slots.entries.push(Some(entry));
                slots.entries.len() - 1
            }
        }
    }

    /// Whether the call at `key` is due; otherwise keeps `waker` for it.
    fn due_or_wait(&self, key: usize, waker: &Waker) -> bool {
        let mut slots = self.slots.lock();
        let Some(Some(entry)) = slots.entries.get_mut(key) else {
            return true;
        };
        if entry.due {
            return true;
        }
        if !entry.waker.will_wake(waker) {
            entry.waker = waker.clone();
        }
        false
    }

    fn remove(&self, key: usize) {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.entries.get_mut(key)
            && slot.take().is_some()
        {
            slots.free.push(key);
        }
    }

    /// Wakes the calls whose deadline is within reach of `now`.
    pub(crate) fn tick(&self, now: Instant) {
        let mut woken = Vec::new();
        {
            let mut slots = self.slots.lock();
            for entry in slots.entries.iter_mut().flatten() {
                if !entry.due && entry.deadline <= now + REACH {
                    entry.due = true;
                    woken.push(entry.waker.clone());
                }
            }
            // A burst of calls leaves a long list behind; give it back once
            // it is empty.
            if slots.free.len() == slots.entries.len() && slots.entries.len() > 1024 {
                *slots = Slots::default();
            }
        }
        for waker in woken {
            waker.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// The deadline of one call: a place in [`Deadlines`] while far away,
    /// an exact tokio timer once near.
    pub(crate) struct CallDeadline<'a> {
        deadlines: &'a Deadlines,
        deadline: Instant,
        // Whether the deadline was out of reach when the call began.
        far: bool,
        key: Option<usize>,
        #[pin]
        timer: Option<Sleep>,
    }

    impl<'a> PinnedDrop for CallDeadline<'a> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(key) = this.key.take() {
                this.deadlines.remove(key);
            }
        }
    }
}

impl<'a> CallDeadline<'a> {
    pub(crate) fn new(deadlines: &'a Deadlines, timeout: Duration) -> Self {
        Self {
            deadlines,
            deadline: Instant::now() + timeout,
            far: timeout > REACH,
            key: None,
            timer: None,
        }
    }

    /// Ready once the deadline has passed; registers `cx` to be woken then.
    pub(crate) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.timer.is_none() {
            match *this.key {
                None if *this.far => {
                    *this.key = Some(this.deadlines.insert(*this.deadline, cx.waker()));
                    return Poll::Pending;
                }
                Some(key) => {
                    if !this.deadlines.due_or_wait(key, cx.waker()) {
                        return Poll::Pending;
                    }
                    this.deadlines.remove(key);
                    *this.key = None;
                }
                None => {}
            }
            this.timer
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        match this.timer.as_pin_mut() {
            Some(timer) => timer.poll(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_tick_wakes_only_the_calls_whose_deadline_is_within_reach() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let deadlines = Deadlines::default();
        let now = Instant::now();
        let near = deadlines.insert(now + REACH, &waker);
        let far = deadlines.insert(now + REACH + TICK, &waker);

        deadlines.tick(now);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(deadlines.due_or_wait(near, &waker));
        assert!(!deadlines.due_or_wait(far, &waker));

        deadlines.tick(now + TICK);
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "each call woken once");
        assert!(deadlines.due_or_wait(far, &waker));
    }

    #[test]
    fn a_removed_call_frees_its_place_and_is_not_woken() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let deadlines = Deadlines::default();
        let now = Instant::now();
        let first = deadlines.insert(now, &waker);
        deadlines.remove(first);
        deadlines.tick(now);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let second = deadlines.insert(now, &waker);
        assert_eq!(second, first, "the place is used again");
    }
}
