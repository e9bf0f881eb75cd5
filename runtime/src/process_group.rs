//! Child processes in their own process group, killed as a group.
//!
//! MCP servers are often wrappers (`npx` → `node`, `uv run` → `python`): killing only the
//! direct child leaves the real server running as an orphan. Each child is made the leader of a
//! new process group and the whole group is signalled; the guard kills the group when dropped,
//! so an aborted task or a removed installation leaves nothing behind. On Linux the direct child
//! also gets `PR_SET_PDEATHSIG`, so it dies if this process is killed without a chance to clean
//! up.

use std::time::Duration;

use tokio::process::{Child, Command};

/// Makes `command` start in a new process group (and die with this process on Linux).
pub fn isolate(command: &mut Command) {
    command.process_group(0);
    command.kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
    // parent; it is the only thing run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A process group led by a spawned child; the group is SIGKILLed when this is dropped.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Option<i32>,
}

impl ProcessGroup {
    /// The group of a child spawned after [`isolate`].
    pub fn of(child: &Child) -> ProcessGroup {
        ProcessGroup {
            pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
        }
    }

    /// The group id (the leader's pid), if known.
    pub fn id(&self) -> Option<i32> {
        self.pgid
    }

    /// Sends `signal` to every process of the group (errors such as "no such process" ignored:
    /// the group may be gone already).
    pub fn signal(&self, signal: i32) {
        if let Some(pgid) = self.pgid.filter(|&p| p > 1) {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }

    /// SIGTERM to the group, then SIGKILL if the leader has not exited within `grace`.
    /// Returns once the leader has been reaped.
    pub async fn terminate(&self, child: &mut Child, grace: Duration) {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!(
                pgid = self.pgid,
                "the server did not exit within {grace:?} of SIGTERM; killing its process group"
            );
        }
        self.signal(libc::SIGKILL);
        let _ = child.wait().await;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}
