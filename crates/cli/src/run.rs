//! `vigil run`: the daemon. Watches a live camera (or any source spec) while the printer prints, acts on
//! failures (pause once per print / notify a webhook), serves Prometheus metrics on a loopback port, drives
//! telemetry uploads from a background thread, reloads its config on SIGHUP and drains and exits on
//! SIGTERM (or Ctrl-C).
//!
//! Wiring, top to bottom: config -> printer adapter -> source spec (argument, `[source] spec`, or the
//! printer's first webcam) -> while printing, a session: read -> detect -> judge -> privacy/spool stages
//! and an event thread; the main loop polls the printer, starts and stops sessions, and runs the actions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{unbounded, Receiver, Sender};
use tracing::{error, info, warn};
use vigil_capture::{open_spec, SourceSpec, Timing};
use vigil_detect::{Event, EventKind, Judge, OnnxModel, PreparedModel};
use vigil_pipeline::{
    detect_stage, judge_stage, metric, read_stage, render_counters, serve_metrics, snapshot_stage, Config,
    Counters, Pacing, RecordInfo, Render, SpoolSink,
};
use vigil_printer::{Action, PauseGuard, PrintState, Printer, Webhook};
use vigil_privacy::{ConsentStore, HardwareIds, PrivacyGate, Scrubber};
use vigil_telemetry::{HttpUploader, Mode, Step, SystemClock, Telemetry};

#[derive(clap::Args)]
pub struct Args {
    /// What to watch: a file, a folder of frames, /dev/videoN, an http(s) MJPEG stream URL, a snapshot URL
    /// (with --poll) or an rtsp:// URL. Default: [source] spec, else the printer's first webcam.
    source: Option<String>,
    /// Fetch SOURCE as a snapshot URL every SECONDS.
    #[arg(long, value_name = "SECONDS")]
    poll: Option<f64>,
    /// Also write each event as one JSON line to FILE (appended).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Metrics address (loopback), overriding [metrics] listen; "" turns metrics off.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

// Signals, set by the handlers and read by the main loop.
static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handlers only store to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

/// Daemon-wide figures besides the pipeline counters (which also live for the whole run).
#[derive(Default)]
struct Figures {
    pauses: AtomicU64,
    pauses_refused: AtomicU64,
    notifications: AtomicU64,
    notification_errors: AtomicU64,
    printer_errors: AtomicU64,
    printing: AtomicBool,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
    sessions: AtomicU64,
    telemetry: Mutex<Option<Arc<Telemetry>>>,
}

/// One watching period: the stage threads and the event thread.
struct Session {
    stop: Arc<AtomicBool>,
    events_thread: JoinHandle<()>,
}

impl Session {
    /// Stops the source; the stages drain and the event thread ends.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.events_thread.join().is_err() {
            error!("the event thread panicked");
        }
    }
}

/// A failure (or warning) event on its way from the event thread to the main loop.
struct Raised {
    event: Event,
    source: String,
    snapshot: Option<Vec<u8>>,
}

pub fn run(
    args: Args,
    cfg: Config,
    model: Option<PathBuf>,
    config_path: Option<PathBuf>,
) -> Result<ExitCode> {
    install_signal_handlers();
    let cli_model = model;
    let model_path = crate::model_path(cli_model.clone(), &cfg)?;
    let mut model = Arc::new(OnnxModel::load(&model_path, cfg.detector_threads())?);
    let counters = Arc::new(Counters::default());
    let figures = Arc::new(Figures::default());
    let quit = Arc::new(AtomicBool::new(false));

    let mut cfg = cfg;
    let metrics_addr = match &args.metrics {
        Some(a) => vigil_pipeline::MetricsConfig { listen: a.clone() }.addr().map_err(anyhow::Error::msg)?,
        None => cfg.metrics.addr().map_err(anyhow::Error::msg)?,
    };
    if let Some(addr) = metrics_addr {
        let bound = serve_metrics(addr, renderer(counters.clone(), figures.clone()), quit.clone())
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        info!("metrics on http://{bound}/metrics");
        eprintln!("vigil: metrics on http://{bound}/metrics");
    }
    let uploads = start_uploads(&cfg, &figures, &quit)?;

    let mut events_out = match &args.events {
        Some(p) => Some(Arc::new(Mutex::new(BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?,
        )))),
        None => None,
    };

    'config: loop {
        let mut printer = vigil_printer::connect(&cfg.printer)?;
        let spec = source_spec(&args, &cfg, &mut printer)?;
        let live = spec.is_live();
        info!("watching {} ({})", spec.display_id(), if live { "live" } else { "recorded" });
        eprintln!("vigil: watching {}", spec.display_id());
        let webhook = cfg
            .printer
            .webhook
            .as_deref()
            .map(|u| Webhook::new(u, Duration::from_secs_f64(cfg.printer.timeout_s)));
        let mut guard = PauseGuard::new(
            cfg.printer.max_pauses_per_print,
            Duration::from_secs_f64(cfg.printer.resume_cooldown_s),
        );
        let (raised_tx, raised_rx) = unbounded::<Raised>();
        let mut session: Option<Session> = None;
        let mut next_poll = Instant::now();
        let poll = Duration::from_secs_f64(cfg.printer.poll_s);
        let mut last_printer_error: Option<Instant> = None;
        let mut ended = false;

        loop {
            if TERM.load(Ordering::SeqCst) {
                eprintln!("vigil: stopping");
                if let Some(s) = session.take() {
                    s.finish();
                }
                drain_events(&raised_rx, &cfg, &mut printer, &mut guard, webhook.as_ref(), &figures);
                break 'config;
            }
            if HUP.swap(false, Ordering::SeqCst) {
                match reload(config_path.as_deref()) {
                    Ok(new) => {
                        figures.reloads.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = session.take() {
                            s.finish();
                        }
                        drain_events(&raised_rx, &cfg, &mut printer, &mut guard, webhook.as_ref(), &figures);
                        if new.model_path() != cfg.model_path()
                            || new.detector_threads() != cfg.detector_threads()
                        {
                            let path = crate::model_path(cli_model.clone(), &new)?;
                            model = Arc::new(OnnxModel::load(&path, new.detector_threads())?);
                        }
                        cfg = new;
                        eprintln!("vigil: configuration reloaded");
                        continue 'config;
                    }
                    Err(e) => {
                        figures.reload_errors.fetch_add(1, Ordering::Relaxed);
                        error!("reload refused, keeping the running configuration: {e:#}");
                        eprintln!("vigil: reload refused, keeping the running configuration: {e:#}");
                    }
                }
            }

            // Is the printer printing? Without a printer: always.
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + poll;
                let printing = match printer.as_mut() {
                    None => true,
                    Some(p) => match p.status() {
                        Ok(st) => {
                            guard.observe(&st, Instant::now());
                            last_printer_error = None;
                            st.state == PrintState::Printing
                        }
                        Err(e) => {
                            figures.printer_errors.fetch_add(1, Ordering::Relaxed);
                            if last_printer_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                                warn!("printer state unknown: {e}");
                                last_printer_error = Some(Instant::now());
                            }
                            // Unknown: keep doing what we did.
                            session.is_some()
                        }
                    },
                };
                figures.printing.store(printing, Ordering::Relaxed);
                if printing && session.is_none() && !ended {
                    let telemetry = figures.telemetry.lock().ok().and_then(|g| g.clone());
                    match start_session(
                        &spec,
                        &cfg,
                        &model,
                        &counters,
                        &raised_tx,
                        events_out.as_ref(),
                        telemetry,
                    ) {
                        Ok(s) => {
                            figures.sessions.fetch_add(1, Ordering::Relaxed);
                            session = Some(s);
                        }
                        Err(e) => error!("cannot start watching: {e:#}"),
                    }
                } else if !printing {
                    if let Some(s) = session.take() {
                        info!("not printing: detection paused");
                        s.finish();
                    }
                }
            }
            drain_events(&raised_rx, &cfg, &mut printer, &mut guard, webhook.as_ref(), &figures);
            // A recorded source that ended: the daemon stays up (metrics, signals) without watching.
            if session.as_ref().is_some_and(|s| s.events_thread.is_finished()) {
                if let Some(s) = session.take() {
                    s.finish();
                }
                if !live {
                    ended = true;
                    eprintln!("vigil: the source ended");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    quit.store(true, Ordering::Relaxed);
    if let Some(t) = uploads {
        let _ = t.join();
    }
    if let Some(out) = events_out.take() {
        if let Ok(mut w) = out.lock() {
            w.flush().context("cannot write the events file")?;
        }
    }
    let s = counters.summary(Duration::ZERO);
    eprintln!(
        "vigil: stopped: frames read {}, analysed {}, dropped {}, events {}, outages {}, pauses {}",
        s.read,
        s.analysed,
        s.dropped,
        s.events,
        s.outages,
        figures.pauses.load(Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

fn reload(path: Option<&std::path::Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => anyhow::bail!("no --config file to reload"),
    }
}

/// The spec to watch: the argument, `[source] spec`, or the printer's webcam (its stream, else its
/// snapshot URL polled every 2 s).
fn source_spec(args: &Args, cfg: &Config, printer: &mut Option<Box<dyn Printer>>) -> Result<SourceSpec> {
    let poll = args.poll.or(cfg.source.poll_s);
    if let Some(s) = args.source.as_deref().or(cfg.source.spec.as_deref()) {
        return SourceSpec::parse(s, poll).map_err(anyhow::Error::msg);
    }
    let Some(p) = printer.as_mut() else {
        anyhow::bail!("no source: give one (vigil run SOURCE) or set [source] spec, or configure a [printer] with a webcam")
    };
    let cams = p.webcams().with_context(|| format!("cannot list the webcams of {}", p.host()))?;
    let cam = match &cfg.printer.webcam {
        Some(name) => {
            cams.iter().find(|c| &c.name == name).with_context(|| format!("no webcam named {name:?}"))?
        }
        None => cams.first().with_context(|| format!("{} has no webcam configured", p.host()))?,
    };
    info!("using the printer's webcam {:?}", cam.name);
    match (&cam.stream_url, &cam.snapshot_url) {
        (Some(u), _) if poll.is_none() => SourceSpec::parse(u, None),
        (_, Some(u)) => SourceSpec::parse(u, Some(poll.unwrap_or(2.0))),
        (Some(u), None) => SourceSpec::parse(u, None),
        (None, None) => Err(format!("webcam {:?} has no URL", cam.name)),
    }
    .map_err(anyhow::Error::msg)
}

fn start_session(
    spec: &SourceSpec,
    cfg: &Config,
    model: &Arc<OnnxModel>,
    counters: &Arc<Counters>,
    raised: &Sender<Raised>,
    events_out: Option<&Arc<Mutex<BufWriter<File>>>>,
    telemetry: Option<Arc<Telemetry>>,
) -> Result<Session> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = cfg.source.live_options(model.info().input_size);
    opts.retry_first = true;
    opts.stop = Some(stop.clone());
    let timing = cfg.pipeline.interval_s.map(Timing::Interval).unwrap_or_default();
    let source = open_spec(spec, timing, &opts)?;
    let pacing = if spec.is_live() { Pacing::Fast } else { Pacing::Realtime };
    let frames = read_stage(source, pacing, stop.clone(), counters.clone());
    let scored = detect_stage(frames, model.detector()?, counters.clone());
    let judged = judge_stage(scored, Judge::new(cfg.judge.clone()), counters.clone());
    let privacy = crate::scrub::privacy_config(cfg)?;
    let info = RecordInfo {
        printer_model: cfg.device.printer_model.clone(),
        firmware: cfg.device.firmware.clone(),
        model_version: model.info().version.clone(),
    };
    // With uploads running, the spool is shared with the upload thread.
    let sink = match telemetry {
        Some(t) => SpoolSink::with_telemetry(t, info, privacy.purpose.window_s, counters.clone()),
        None => SpoolSink::new(cfg.telemetry.clone(), info, privacy.purpose.window_s, counters.clone()),
    };
    let ids = HardwareIds { mac: cfg.device.mac(), serial: cfg.device.serial.clone() };
    let gate = PrivacyGate::new(&privacy, ids.clone(), sink);
    let judged = snapshot_stage(judged, gate, spec.display_id(), counters.clone());

    let raised = raised.clone();
    let events_out = events_out.cloned();
    let want_snapshot = cfg.printer.webhook.is_some() && cfg.printer.webhook_snapshot;
    let consent = ConsentStore::new(privacy.consent_file.clone());
    let events_thread = std::thread::Builder::new().name("events".into()).spawn(move || {
        let mut scrubber: Option<Scrubber> = None;
        for j in judged {
            let Some(event) = j.event else { continue };
            let kind = serde_json::to_value(event.kind).ok().and_then(|v| v.as_str().map(str::to_string));
            println!(
                "{:<8} frame {:>6}  t {:>9.1} s  score {:.3}  regions {}",
                kind.as_deref().unwrap_or("event"),
                event.frame,
                event.t,
                event.score,
                event.regions.len()
            );
            if let Some(out) = &events_out {
                if let (Ok(mut w), Ok(line)) = (out.lock(), serde_json::to_string(&event)) {
                    if writeln!(w, "{line}").and_then(|_| w.flush()).is_err() {
                        warn!("cannot write the events file");
                    }
                }
            }
            // The scrubbed snapshot goes to the webhook only while the owner consents.
            let snapshot = if want_snapshot && event.kind == EventKind::Failure && consent.is_on() {
                let s =
                    scrubber.get_or_insert_with(|| Scrubber::from_config(&privacy).forbid_identifiers(&ids));
                match s.scrub_image(&j.scored.frame.image) {
                    Ok(s) => Some(s.jpeg),
                    Err(e) => {
                        warn!("snapshot for the webhook dropped: {}", e.code());
                        None
                    }
                }
            } else {
                None
            };
            let source = j.scored.frame.source.to_string();
            if raised.send(Raised { event, source, snapshot }).is_err() {
                break;
            }
        }
    })?;
    Ok(Session { stop, events_thread })
}

/// Runs the configured action for each raised event.
fn drain_events(
    rx: &Receiver<Raised>,
    cfg: &Config,
    printer: &mut Option<Box<dyn Printer>>,
    guard: &mut PauseGuard,
    webhook: Option<&Webhook>,
    figures: &Figures,
) {
    for r in rx.try_iter() {
        if r.event.kind != EventKind::Failure {
            continue;
        }
        let host = printer.as_ref().map(|p| p.host().to_string()).unwrap_or_default();
        let mut action = String::from("notify");
        if cfg.printer.action == Action::Pause {
            if let Some(p) = printer.as_mut() {
                // Read the state now: the pause rule needs the latest.
                if let Ok(st) = p.status() {
                    guard.observe(&st, Instant::now());
                }
                action = match guard.may_pause(Instant::now()) {
                    Ok(()) => match p.pause() {
                        Ok(()) => {
                            guard.paused();
                            figures.pauses.fetch_add(1, Ordering::Relaxed);
                            eprintln!("vigil: failure at frame {}: print paused", r.event.frame);
                            "paused".into()
                        }
                        Err(e) => {
                            figures.printer_errors.fetch_add(1, Ordering::Relaxed);
                            error!("cannot pause the print: {e}");
                            format!("pause failed: {e}")
                        }
                    },
                    Err(refusal) => {
                        figures.pauses_refused.fetch_add(1, Ordering::Relaxed);
                        info!("failure at frame {}: not pausing: {refusal}", r.event.frame);
                        format!("not paused: {refusal}")
                    }
                };
            }
        }
        if cfg.printer.action == Action::Log {
            continue;
        }
        if let Some(w) = webhook {
            match w.notify(&r.event, &host, &r.source, &action, r.snapshot.as_deref()) {
                Ok(()) => {
                    figures.notifications.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    figures.notification_errors.fetch_add(1, Ordering::Relaxed);
                    warn!("webhook: {e}");
                }
            }
        }
    }
}

/// Telemetry uploads from a background thread (upload mode only).
fn start_uploads(
    cfg: &Config,
    figures: &Arc<Figures>,
    quit: &Arc<AtomicBool>,
) -> Result<Option<JoinHandle<()>>> {
    if cfg.telemetry.mode != Mode::Upload {
        return Ok(None);
    }
    let privacy = crate::scrub::privacy_config(cfg)?;
    let consent = ConsentStore::new(privacy.consent_file.clone()).is_on();
    if !consent && !cfg.telemetry.spool_dir.exists() {
        // Nothing was ever spooled and nothing may be: no thread.
        return Ok(None);
    }
    let telemetry = match Telemetry::open(cfg.telemetry.clone(), Arc::new(SystemClock), consent) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            warn!("telemetry uploads off: {e}");
            return Ok(None);
        }
    };
    if let Ok(mut g) = figures.telemetry.lock() {
        *g = Some(telemetry.clone());
    }
    let mut uploader = HttpUploader::new(&cfg.telemetry.timeouts, Arc::new(SystemClock));
    let quit = quit.clone();
    Ok(Some(std::thread::Builder::new().name("uploads".into()).spawn(move || {
        while !quit.load(Ordering::Relaxed) {
            let wait = match telemetry.step(&mut uploader) {
                Ok(Step::Sent { .. }) => Duration::ZERO,
                Ok(Step::Wait(d)) => d.min(Duration::from_secs(5)),
                Ok(_) => Duration::from_secs(5),
                Err(e) => {
                    warn!("telemetry upload step: {e}");
                    Duration::from_secs(5)
                }
            };
            let until = Instant::now() + wait;
            while Instant::now() < until && !quit.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })?))
}

fn renderer(counters: Arc<Counters>, figures: Arc<Figures>) -> Render {
    Arc::new(move || {
        let mut out = String::new();
        render_counters(&counters, &mut out);
        let f = &figures;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            &mut out,
            "vigil_printing",
            "gauge",
            "1 while the printer prints (detection runs).",
            f.printing.load(Ordering::Relaxed) as u8 as f64,
        );
        metric(&mut out, "vigil_pauses_total", "counter", "Prints paused after a failure.", get(&f.pauses));
        metric(
            &mut out,
            "vigil_pauses_refused_total",
            "counter",
            "Failures that did not pause (once per print, cooldown).",
            get(&f.pauses_refused),
        );
        metric(
            &mut out,
            "vigil_notifications_total",
            "counter",
            "Webhook calls that succeeded.",
            get(&f.notifications),
        );
        metric(
            &mut out,
            "vigil_notification_errors_total",
            "counter",
            "Webhook calls that failed.",
            get(&f.notification_errors),
        );
        metric(
            &mut out,
            "vigil_printer_errors_total",
            "counter",
            "Failed requests to the printer's host.",
            get(&f.printer_errors),
        );
        metric(
            &mut out,
            "vigil_sessions_total",
            "counter",
            "Watching periods started (one per print).",
            get(&f.sessions),
        );
        metric(
            &mut out,
            "vigil_config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP) applied.",
            get(&f.reloads),
        );
        metric(
            &mut out,
            "vigil_config_reload_errors_total",
            "counter",
            "Reloads refused (invalid file).",
            get(&f.reload_errors),
        );
        let tel = f.telemetry.lock().ok().and_then(|g| g.clone());
        let (bytes, bundles, delivered, attempts) = match &tel {
            Some(t) => {
                let (bytes, n) = t.with_spool_mut(|s| s.usage());
                let c = t.counters();
                (bytes as f64, n as f64, c.upload.delivered as f64, c.upload.attempts as f64)
            }
            None => (0.0, 0.0, 0.0, 0.0),
        };
        metric(&mut out, "vigil_spool_bytes", "gauge", "Bytes held in the telemetry spool.", bytes);
        metric(&mut out, "vigil_spool_bundles", "gauge", "Bundles held in the telemetry spool.", bundles);
        metric(
            &mut out,
            "vigil_uploads_total",
            "counter",
            "Bundles delivered to the telemetry endpoint.",
            delivered,
        );
        metric(&mut out, "vigil_upload_attempts_total", "counter", "Upload attempts.", attempts);
        out
    })
}
