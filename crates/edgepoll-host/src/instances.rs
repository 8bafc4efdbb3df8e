//! `--instances N`: one guest, compiled once, run as N instances, each on a
//! thread of its own with a store of its own, the guests unchanged. Their
//! sockets share ports (`SO_REUSEPORT`; never one another process holds:
//! `sock::shared_port`), so the kernel spreads the
//! connections to a port over the instances that listen on it: a
//! single-threaded event loop uses every core, as nginx's workers do.
//!
//! An instance that ends is restarted (unless `--restart no`):
//!
//! - one that exits with 0 (it finished, say after `--exit-after N`
//!   requests) at once, if it ran a second or more (one that ends sooner
//!   waits as a failed one does, without being given up);
//! - one that traps or exits with another code after a pause that doubles
//!   with each failure in a row (100 ms up to 2 s; a run of [`HEALTHY`] or
//!   a clean exit starts it over). Five failures in a row,
//!   each within a second of starting (a guest that cannot bind its port,
//!   or traps at start), make the host give up: a clear message and exit
//!   code 1, rather than restarting forever.
//!
//! With `--restart no` the host exits once the last instance has, with the
//! worst exit code among them.
//!
//! The instances share the process's descriptors (`RLIMIT_NOFILE`): each
//! may hold its share, less a reserve for the host's own (its pollers, a
//! restarted instance's start), and past it gets EMFILE as it would at the
//! process's limit. Without that, one instance holding every descriptor
//! made the others' accepts fail and their restarts impossible.
//!
//! SIGTERM or SIGINT stops the service gracefully: every listening socket
//! of every instance is shut down, so the kernel refuses new connections
//! and each instance's `accept` fails. An edgepoll server takes that as its
//! cue to finish what it accepted (requests begun are answered with
//! `Connection: close`, idle connections close) and return, so its instance
//! exits. The host exits 0 once every instance has, or when the grace
//! period (`--grace`, 10 s) ends, whichever comes first; a second signal
//! ends it at once.

use crate::compile_cache;
use crate::fd_table::Shared;
use crate::runtime::{self, Instance, Invocation};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// SIGTERM and SIGINT received so far (one that comes within
/// [`SAME_SIGNAL`] of the first counts as the same).
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// When the first signal came (CLOCK_MONOTONIC, ns; 0: none yet).
static FIRST_SIGNAL_NS: AtomicU64 = AtomicU64::new(0);
/// A stop signal sent to the process and to its group (as GNU `timeout`
/// sends it) arrives twice within microseconds: one stop, not a stop and
/// then "at once".
const SAME_SIGNAL: Duration = Duration::from_millis(250);
/// Set once the service is stopping: no instance starts again.
static STOPPING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe and writes the struct given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let ns = (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
        .max(1);
    let first = match FIRST_SIGNAL_NS.compare_exchange(0, ns, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => ns,
        Err(first) => first,
    };
    if ns == first || ns.saturating_sub(first) >= SAME_SIGNAL.as_nanos() as u64 {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
}

fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only reads the clock and sets atomics, which
        // are signal-safe. A signal ignored when the host started stays so
        // (a shell ignores SIGINT for a job it starts with `&`): a Ctrl-C
        // meant for the script does not stop the service.
        unsafe {
            let mut was: libc::sigaction = std::mem::zeroed();
            let known = libc::sigaction(signal, std::ptr::null(), &mut was) == 0;
            if !(known && was.sa_sigaction == libc::SIG_IGN) {
                libc::signal(signal, handler);
            }
        }
    }
}

/// An instance that fails this many times in a row, each within
/// [`QUICK`] of starting, is not started again.
const GIVE_UP_AFTER: u32 = 5;
const QUICK: Duration = Duration::from_secs(1);
/// A run this long ends a series of failures: the next one pauses the
/// first pause again.
const HEALTHY: Duration = Duration::from_secs(10);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Whether an instance that ended starts again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Always,
    No,
}

/// `N` or `auto` (one per core the process may use).
///
/// ```
/// assert_eq!(edgepoll_host::instances::parse_count("3"), Ok(3));
/// assert!(edgepoll_host::instances::parse_count("auto").unwrap() >= 1);
/// assert!(edgepoll_host::instances::parse_count("0").is_err());
/// ```
pub fn parse_count(text: &str) -> Result<usize, String> {
    if text == "auto" {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Ok(cores.min(1024));
    }
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "--instances takes a number from 1 to 1024 or auto, not {text:?}"
        )),
    }
}

/// `always` or `no`.
pub fn parse_restart(text: &str) -> Result<Restart, String> {
    match text {
        "always" => Ok(Restart::Always),
        "no" => Ok(Restart::No),
        _ => Err(format!("--restart takes always or no, not {text:?}")),
    }
}

/// What an instance's thread tells the supervisor.
enum Report {
    /// It ended for good with this exit code (`--restart no`).
    Ended(i32),
    /// It failed again and again right after starting.
    GaveUp(String),
}

/// Runs `count` instances of the guest; returns the exit code for the
/// host (see the module documentation), or why it gave up.
pub fn run(
    invocation: &Invocation,
    count: usize,
    restart: Restart,
    grace: Duration,
) -> Result<i32, String> {
    let (engine, module, cache) = runtime::compile(invocation)?;
    // What every instance would refuse the same way (a --dir that is not
    // there, an import no runtime provides) is refused once, before any
    // starts: not five failed starts of each.
    let directories = runtime::Directories::open(invocation)?;
    runtime::host_state(invocation, &directories)?;
    crate::linker::link(&engine, &module)
        .and_then(|linker| linker.instantiate_pre(&module).map(drop))
        .map_err(|e| format!("cannot link {}: {e}", invocation.module.display()))?;
    if let Some(why) = runtime::not_a_command(&module, &invocation.module) {
        return Err(why);
    }
    let (reports, supervisor) = mpsc::channel();
    let shared: Vec<Arc<Shared>> = (0..count).map(|_| Arc::default()).collect();
    let max_descriptors = match count > 1 {
        true => Some(descriptors_each(count)?),
        false => None,
    };
    catch_signals();
    std::thread::scope(|scope| {
        for (number, shared) in shared.iter().enumerate() {
            let (engine, module, reports) = (&engine, &module, reports.clone());
            let directories = &directories;
            let instance = Instance {
                number: (count > 1).then_some(number),
                reuse_port: count > 1,
                shared: Some(shared.clone()),
                max_descriptors,
            };
            let started = std::thread::Builder::new()
                .name(format!("instance {number}"))
                .stack_size(runtime::GUEST_THREAD_STACK)
                .spawn_scoped(scope, move || {
                    let run = |instance: &Instance| {
                        runtime::run_compiled(engine, module, invocation, directories, instance)
                    };
                    let report = keep_running(run, &instance, restart);
                    let _ = reports.send(report);
                });
            if let Err(e) = started {
                // Returning would wait for the instances already running,
                // which may never end: the process ends here.
                crate::output::say(&format!("cannot start a thread for instance {number}: {e}"));
                compile_cache::forget_exposed(&cache);
                std::process::exit(1);
            }
        }
        drop(reports);
        let mut worst = 0;
        // Instances that ended before the stop began (`--restart no`):
        // their failures are not the stop's, and count whatever comes after.
        let mut worst_before_stop = 0;
        let mut stop_at = None;
        let mut gave_up = false;

        loop {
            match supervisor.recv_timeout(Duration::from_millis(50)) {
                Ok(Report::Ended(code)) => {
                    worst = worse(worst, code);
                    if stop_at.is_none() {
                        worst_before_stop = worse(worst_before_stop, code);
                    }
                }
                // The others stop as on a signal (what they accepted is
                // answered), and the host then exits 1.
                Ok(Report::GaveUp(message)) => {
                    crate::output::say(&message);
                    gave_up = true;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Every instance has ended.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let signals = SIGNALS.load(Ordering::SeqCst);
            if (signals > 0 || gave_up) && stop_at.is_none() {
                // Stopped first, told after: the telling may be slow.
                STOPPING.store(true, Ordering::SeqCst);
                for instance in &shared {
                    instance.stop_accepting();
                }
                stop_at = Some(Instant::now() + grace);
                crate::output::say(&format!(
                    "stopping: no new connections; waiting up to {grace:?} for those accepted"
                ));
            }
            if let Some(at) = stop_at {
                // A second signal ends it at once, however soon it came.
                if signals > 1 || Instant::now() >= at {
                    compile_cache::forget_exposed(&cache);
                    crate::output::say("stopped before every instance had finished");
                    std::process::exit(exit_code(
                        gave_up,
                        stop_at.is_some(),
                        worst_before_stop,
                        worst,
                    ));
                }
            }
        }
        compile_cache::forget_exposed(&cache);
        Ok(exit_code(
            gave_up,
            stop_at.is_some(),
            worst_before_stop,
            worst,
        ))
    })
}

/// The host's exit code: 1 when it gave up on an instance; after a stop,
/// the worst code of the instances that ended before it began (with
/// `--restart no`: what ended during the stop is the stop's doing, a guest
/// whose failed `accept` ends it with an error included); otherwise the
/// worst of them all.
fn exit_code(gave_up: bool, stopped: bool, worst_before_stop: i32, worst: i32) -> i32 {
    match (gave_up, stopped) {
        (true, _) => 1,
        (false, true) => worst_before_stop,
        (false, false) => worst,
    }
}

/// The worse of two exit codes: any failure over success, then the higher.
fn worse(a: i32, b: i32) -> i32 {
    // As the statuses they become: their low bytes (256 is a success).
    match (a & 0xff, b & 0xff) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.max(b),
    }
}

/// Runs one instance, again and again while `restart` says so.
fn keep_running(
    run: impl Fn(&Instance) -> Result<i32, runtime::Failure>,
    instance: &Instance,
    restart: Restart,
) -> Report {
    let name = match instance.number {
        Some(number) => format!("instance {number}"),
        None => "the instance".to_string(),
    };
    let mut ends = Ends::default();
    loop {
        if STOPPING.load(Ordering::SeqCst) {
            // Stopped while it paused: it does not start again.
            return Report::Ended(0);
        }
        let started = Instant::now();
        let accepted = || {
            instance
                .shared
                .as_ref()
                .map_or(0, |shared| shared.accepted())
        };
        let accepted_before = accepted();
        // A panic in the host's own code (a bug) ends this run as a failure,
        // restarted as the policy says, rather than the instance for good:
        // its store is dropped with the run; the engine and module are
        // only read.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(instance)))
            .unwrap_or_else(|_| {
                Err("a fault in edgepoll-host itself ended it"
                    .to_string()
                    .into())
            });
        let (code, what) = match &outcome {
            Ok(code) => (*code, format!("{name} exited with code {code}")),
            Err(failure) => (
                i32::from(failure.exit_code()),
                format!("{name}: {}", failure.message),
            ),
        };
        if restart == Restart::No || STOPPING.load(Ordering::SeqCst) {
            if code != 0 {
                crate::output::say(&what);
            }
            return Report::Ended(code);
        }
        let served = accepted() != accepted_before;
        match ends.ended(code, started.elapsed(), served) {
            Next::Start(Duration::ZERO) => {
                crate::output::say(&format!("{what}; starting it again"));
            }
            Next::Start(pause) => {
                crate::output::say(&format!("{what}; starting it again in {pause:?}"));
                sleep_unless_stopped(pause);
            }
            Next::GiveUp(failures) => {
                return Report::GaveUp(format!(
                    "{what}; it failed {failures} times in a row within {QUICK:?} of starting: giving up"
                ));
            }
        }
    }
}

/// How an instance's runs have ended, for the next start.
#[derive(Default)]
struct Ends {
    /// Clean exits in a row, each within [`QUICK`] of starting.
    quick_exits: u32,
    /// Failures in a row, each within [`QUICK`] of starting and before it
    /// accepted anyone: a start that fails (a port in use, a bad
    /// argument), which starting again will not mend.
    quick_failures: u32,
    /// Failures in a row, however long each ran, since the last run of
    /// [`HEALTHY`] or more, or the last clean exit: the pause doubles with
    /// each, so that a guest that one request makes trap cannot be made to
    /// start again ten times a second.
    failures: u32,
}

/// What follows an instance's end.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Start it again after this pause.
    Start(Duration),
    /// Give up on it, after this many quick failures.
    GiveUp(u32),
}

impl Ends {
    /// The end of a run with `code`, that `ran` so long and `served` (it
    /// accepted a connection).
    fn ended(&mut self, code: i32, ran: Duration, served: bool) -> Next {
        let quick = ran < QUICK;
        // As the status it becomes: `proc_exit(256)` is a success.
        if code & 0xff == 0 {
            // A clean exit soon after starting waits as a failure would
            // before the next start (without giving up): a guest that ends
            // at once must not spin a core.
            (self.quick_failures, self.failures) = (0, 0);
            self.quick_exits = match quick {
                true => self.quick_exits + 1,
                false => 0,
            };
            return match self.quick_exits {
                0 => Next::Start(Duration::ZERO),
                n => Next::Start(pause_after(n)),
            };
        }
        self.quick_exits = 0;
        // One that served first (a request that makes it trap, say) is not
        // given up on, nor are the others ended for it.
        self.quick_failures = match quick && !served {
            true => self.quick_failures + 1,
            false => 0,
        };
        if self.quick_failures >= GIVE_UP_AFTER {
            return Next::GiveUp(self.quick_failures);
        }
        self.failures = match ran >= HEALTHY {
            true => 1,
            false => self.failures + 1,
        };
        Next::Start(pause_after(self.failures))
    }
}

/// Waits `pause`, or less if the service stops meanwhile: an instance
/// waiting to start again does not start, and the host need not wait out
/// its pause (up to 2 s, longer than a short `--grace`).
fn sleep_unless_stopped(pause: Duration) {
    let until = Instant::now() + pause;
    while !STOPPING.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Descriptors each of `count` instances may hold: the process's soft
/// limit, less a reserve for the host, shared evenly; at least
/// [`LEAST_SHARE`]. A limit too low for that many is refused before any
/// instance starts, where the last instances to start found no descriptor
/// left for their own poller (`ulimit -n 64` and 6 instances), or were
/// given up on.
fn descriptors_each(count: usize) -> Result<usize, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let soft = match known && limit.rlim_cur != libc::RLIM_INFINITY {
        true => usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX),
        false => 1 << 20,
    };
    share_of(soft, count)
}

/// The fewest descriptors an instance is given.
const LEAST_SHARE: usize = 16;

/// [`descriptors_each`] under a soft limit of `soft`.
fn share_of(soft: usize, count: usize) -> Result<usize, String> {
    let count = count.max(1);
    // What the host holds itself at the least: stdio and a few of its
    // own, and each instance's poller and the like outside its share.
    let least = LEAST_SHARE
        .saturating_mul(count)
        .saturating_add(8 + 2 * count);
    if soft < least {
        return Err(format!(
            "{count} instances need at least {least} descriptors ({LEAST_SHARE} each and the host's own), \
             and the limit is {soft}: raise it (ulimit -n) or run fewer instances"
        ));
    }
    let reserve = 32 + 8 * count;
    Ok((soft.saturating_sub(reserve) / count).max(LEAST_SHARE))
}

/// The pause before the next start after `ends` ends in a row (quick
/// clean exits, or failures).
fn pause_after(ends: u32) -> Duration {
    let doublings = ends.saturating_sub(1).min(16);
    (FIRST_PAUSE * 2u32.pow(doublings)).min(LONGEST_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_from_the_first_to_the_longest() {
        assert_eq!(pause_after(1), FIRST_PAUSE);
        assert_eq!(pause_after(2), FIRST_PAUSE * 2);
        assert_eq!(pause_after(1000), LONGEST_PAUSE);
    }

    /// The pause doubles with every failure in a row, quick or not (a
    /// guest that each request makes trap restarted every 100 ms), and
    /// starts over after a healthy run or a clean exit; only quick failures
    /// before serving anyone give up.
    #[test]
    fn failures_in_a_row_double_the_pause_whatever_they_ran() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        let mut ends = Ends::default();
        let pauses: Vec<Next> = (0..6).map(|_| ends.ended(134, s(2), true)).collect();
        let want = [100, 200, 400, 800, 1600, 2000].map(|n| Next::Start(ms(n)));
        assert_eq!(pauses, want);
        // A healthy run, then a failure: the first pause again.
        assert_eq!(ends.ended(134, HEALTHY, true), Next::Start(FIRST_PAUSE));
        assert_eq!(ends.ended(134, s(2), true), Next::Start(ms(200)));
        // A clean exit after a second or more: at once, and the count
        // starts over.
        assert_eq!(ends.ended(0, s(2), true), Next::Start(Duration::ZERO));
        assert_eq!(ends.ended(1, s(2), false), Next::Start(FIRST_PAUSE));
        // Quick failures before serving anyone: given up on at the fifth.
        let mut ends = Ends::default();
        for n in 1..GIVE_UP_AFTER {
            let pause = FIRST_PAUSE * 2u32.pow(n - 1);
            assert_eq!(ends.ended(1, ms(10), false), Next::Start(pause));
        }
        assert_eq!(ends.ended(1, ms(10), false), Next::GiveUp(GIVE_UP_AFTER));
    }

    #[test]
    fn the_worst_exit_code_is_any_failure_then_the_highest() {
        assert_eq!(worse(0, 0), 0);
        assert_eq!(worse(0, 3), 3);
        assert_eq!(worse(134, 0), 134);
        assert_eq!(worse(1, 134), 134);
        // 256 ends a process as 0 does: the 3 is the failure.
        assert_eq!(worse(256, 3), 3);
        assert_eq!(worse(-1, 3), 255);
    }

    #[test]
    fn a_stop_keeps_the_failures_that_came_before_it() {
        assert_eq!(exit_code(false, true, 3, 134), 3);
        assert_eq!(
            exit_code(false, true, 0, 134),
            0,
            "a failure in the stop's wake"
        );
        assert_eq!(exit_code(false, false, 0, 134), 134);
        assert_eq!(exit_code(true, true, 0, 0), 1);
    }

    #[test]
    fn each_instance_gets_its_share_or_the_limit_is_refused() {
        assert_eq!(share_of(128, 2), Ok(40));
        assert_eq!(share_of(64, 2), Ok(LEAST_SHARE));
        assert_eq!(share_of(1 << 20, 4), Ok(((1 << 20) - 64) / 4));
        for (soft, count) in [(64, 6), (32, 4), (1024, 100)] {
            let refused = share_of(soft, count).unwrap_err();
            assert!(
                refused.contains(&format!("the limit is {soft}")),
                "{refused}"
            );
        }
    }

    #[test]
    fn counts_and_policies_are_checked() {
        assert_eq!(parse_count("2"), Ok(2));
        assert!(parse_count("-1").is_err() && parse_count("many").is_err());
        assert_eq!(parse_restart("no"), Ok(Restart::No));
        assert!(parse_restart("sometimes").is_err());
    }
}
