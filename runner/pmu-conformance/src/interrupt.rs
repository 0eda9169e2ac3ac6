//! SIGINT and SIGTERM during a run: the run's own account, not a silent death.
//!
//! While a [`Watch`] lives, both signals are caught by a handler that only
//! writes the signal's number into a pipe (all a handler may safely do); a
//! thread reads it and calls the run's `on_signal`, which kills the run's
//! guests, writes the partial report and exits with 128 + the signal (130,
//! 143), as a shell reports a process those signals ended. Dropping the
//! watch restores the previous dispositions and joins the thread, so a
//! library caller (the soak test runs a thousand runs in one process) keeps
//! its file descriptors, threads and handlers as they were.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

/// The signals a watch catches.
pub const SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// The write end of the live watch's pipe, or -1.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward(signal: i32) {
    let fd = WRITE_END.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe drops the byte,
        // and one byte is all the thread needs.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

/// SIGINT and SIGTERM routed to a callback, for as long as this lives.
pub struct Watch {
    old: Vec<(i32, libc::sigaction)>,
    write: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching; `on_signal` runs on the watch's thread with the
    /// signal's number, once, at the first signal. One watch at a time.
    pub fn start(on_signal: impl FnOnce(i32) + Send + 'static) -> io::Result<Watch> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let thread = std::thread::Builder::new().name("pmu signals".into()).spawn(move || {
            let mut byte = 0u8;
            // SAFETY: a blocking read of one byte into a local.
            let n = unsafe { libc::read(read.as_raw_fd(), (&raw mut byte).cast(), 1) };
            if n == 1 {
                on_signal(i32::from(byte));
            }
        })?;
        WRITE_END.store(write.as_raw_fd(), Ordering::Relaxed);
        let mut watch = Watch {
            old: Vec::new(),
            write: Some(write),
            thread: Some(thread),
        };
        for signal in SIGNALS {
            // SAFETY: plain sigaction calls with fully initialised structures.
            unsafe {
                let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
                action.sa_sigaction = forward as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = MaybeUninit::zeroed().assume_init();
                if libc::sigaction(signal, &action, &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                watch.old.push((signal, old));
            }
        }
        Ok(watch)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (signal, old) in &self.old {
            // SAFETY: restores the disposition `start` replaced.
            unsafe { libc::sigaction(*signal, old, ptr::null_mut()) };
        }
        WRITE_END.store(-1, Ordering::Relaxed);
        // Closing the write end ends the thread's read with end of file.
        drop(self.write.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `SIGINT`, `SIGTERM`, or the number.
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_signal_reaches_the_callback_and_dropping_restores_everything() {
        let before = disposition(libc::SIGTERM);
        let (tx, rx) = mpsc::channel();
        let watch = Watch::start(move |signal| tx.send(signal).unwrap()).unwrap();
        // SAFETY: the watch's handler is installed.
        unsafe { libc::raise(libc::SIGTERM) };
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(libc::SIGTERM));
        drop(watch);
        assert_eq!(disposition(libc::SIGTERM), before);
    }

    fn disposition(signal: i32) -> usize {
        // SAFETY: reads the current action only.
        unsafe {
            let mut old: libc::sigaction = MaybeUninit::zeroed().assume_init();
            libc::sigaction(signal, ptr::null(), &mut old);
            old.sa_sigaction
        }
    }
}
