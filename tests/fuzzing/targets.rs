//! The readers under test (the plan reader twice: as saved, and resealed after mutation), each with its seeds and its oracle for errors.
//!
//! Each `run` is a thin call of the reader's public entry point (what `berth` itself calls), so
//! the harness follows the readers as they change.

use std::path::{Path, PathBuf};

use berth::config;
use berth::inventory::esxml::{self, EsXmlErrorKind};
use berth::plan;
use berth::state::{self, StateError, StateStore};

use super::mutate::Syntax;
use super::{Target, Verdict};

/// The repository.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real OEDA files, beside the repository (absent on other machines: then skipped).
fn oeda_fixtures() -> Vec<PathBuf> {
    let dir = repo().join("../shared/oeda-fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The example directories (examples/plans/*).
fn examples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/plans"))
        .expect("examples/plans")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read_all(paths: impl IntoIterator<Item = PathBuf>) -> Vec<Vec<u8>> {
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// The number of lines of `text` (a location may point one past the last line, at the end).
fn line_count(text: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', text).count() + 1
}

/// The variant name of an error's `Debug` form: `NotAPlan { … }` → `NotAPlan`.
fn variant(debug: &str) -> String {
    debug
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------

/// es.xml: `inventory::esxml::parse_with_layout`, what `berth plan` reads es.xml with.
pub struct EsXml {
    /// Largest seed size to use (the debug-build test leaves out the 1 MB full rack).
    pub max_seed_len: usize,
}

pub const ES_XML_NAME: &str = "fuzz/es.xml";

impl Target for EsXml {
    fn name(&self) -> &'static str {
        "esxml"
    }

    fn syntax(&self) -> Syntax {
        Syntax::Xml
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = read_all(examples().into_iter().map(|d| d.join("es.xml")));
        seeds.extend(read_all(oeda_fixtures()));
        for (hosts, guests, volumes) in [(2, 1, 0), (3, 2, 1), (4, 3, 2)] {
            let mut spec = esxml::SynthSpec::new(hosts, guests, hosts as u64);
            spec.volumes_per_guest = volumes;
            spec.namespace = volumes != 0;
            seeds.push(esxml::synthesize(&spec).into_bytes());
        }
        seeds.retain(|s| s.len() <= self.max_seed_len);
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        // berth reads es.xml with `read_to_string`, which refuses invalid UTF-8 before the
        // parser; the parser sees the lossy text so that the bytes still count.
        let text = String::from_utf8_lossy(input);
        match esxml::parse_with_layout(ES_XML_NAME, &text) {
            Ok((system, layout)) => {
                for (id, host) in &layout.hosts {
                    let mut ranges = vec![host.start_tag.clone()];
                    ranges.extend(host.end_tag.clone());
                    ranges.extend(host.guest_refs.iter().map(|g| g.span.clone()));
                    for r in ranges {
                        if r.start > r.end
                            || r.end > text.len()
                            || !text.is_char_boundary(r.start)
                            || !text.is_char_boundary(r.end)
                        {
                            return Verdict::BadError(format!(
                                "accepted, but host {id}'s layout has range {r:?} outside the text or inside a character ({} bytes)",
                                text.len()
                            ));
                        }
                    }
                }
                // What apply writes back: the first guest moved to another host. The file was
                // accepted and the move is valid, so the rewrite must succeed and say so.
                let first_move = system.guests.first().and_then(|guest| {
                    let to = system.hosts.iter().find(|h| h.id != guest.host_id)?;
                    Some(esxml::GuestMove {
                        guest_id: guest.id.clone(),
                        from_host_id: guest.host_id.clone(),
                        to_host_id: to.id.clone(),
                    })
                });
                if let Some(m) = first_move {
                    let moves = [m];
                    if let Err(e) =
                        esxml::move_guests_parsed(ES_XML_NAME, &text, &system, &layout, &moves)
                    {
                        return Verdict::BadError(format!(
                            "accepted, but moving {} from {} to {} failed: {e}",
                            moves[0].guest_id, moves[0].from_host_id, moves[0].to_host_id
                        ));
                    }
                }
                Verdict::Accepted
            }
            Err(err) => {
                let message = err.to_string();
                if err.source_name != ES_XML_NAME || !message.starts_with(ES_XML_NAME) {
                    return Verdict::BadError(format!("error does not name the file: {message}"));
                }
                // Malformed or truncated XML always has a place: the operator goes to the line.
                let needs_location = matches!(
                    err.kind,
                    EsXmlErrorKind::Malformed(_)
                        | EsXmlErrorKind::Truncated { .. }
                        | EsXmlErrorKind::BadSize { .. }
                        | EsXmlErrorKind::BadValue { .. }
                        | EsXmlErrorKind::DuplicateId { .. }
                );
                match err.location {
                    None if needs_location => {
                        return Verdict::BadError(format!("error without a location: {message}"));
                    }
                    Some(l)
                        if l.line == 0 || l.column == 0 || l.line > line_count(text.as_bytes()) =>
                    {
                        return Verdict::BadError(format!(
                            "location {}:{} outside the input ({} lines): {message}",
                            l.line,
                            l.column,
                            line_count(text.as_bytes())
                        ));
                    }
                    _ => {}
                }
                Verdict::Refused(variant(&format!("{:?}", err.kind)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The HCL configuration: `config::parse_str` (what `load_dir` runs on each file), with the
/// error rendered as `berth` prints it.
pub struct Config;

pub const CONFIG_NAME: &str = "main.hcl";

/// HCL examples from the documentation: ```` ```hcl ```` blocks of README.md and docs/*.md.
fn documented_hcl() -> Vec<Vec<u8>> {
    let mut docs = vec![repo().join("README.md")];
    if let Ok(entries) = std::fs::read_dir(repo().join("docs")) {
        let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        docs.extend(
            more.into_iter()
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    let mut out = Vec::new();
    for doc in docs {
        let Ok(text) = std::fs::read_to_string(doc) else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```hcl\n") {
            let body = &rest[start + 7..];
            let Some(end) = body.find("```") else { break };
            out.push(body.as_bytes()[..end].to_vec());
            rest = &body[end..];
        }
    }
    out
}

impl Target for Config {
    fn name(&self) -> &'static str {
        "config"
    }

    fn syntax(&self) -> Syntax {
        Syntax::Hcl
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = read_all(examples().into_iter().map(|d| d.join("main.hcl")));
        seeds.extend(documented_hcl());
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        // `load_dir` refuses a file that is not UTF-8 with an I/O error before parsing.
        let Ok(text) = std::str::from_utf8(input) else {
            return Verdict::Refused("not UTF-8".to_string());
        };
        match config::parse_str(CONFIG_NAME, text, Path::new("/nonexistent/berth-fuzz")) {
            Ok(_config) => Verdict::Accepted,
            Err(err) => {
                let lines = line_count(input);
                for problem in err.errors() {
                    if let Some(l) = problem.location()
                        && (l.file != CONFIG_NAME || l.line == 0 || l.column == 0 || l.line > lines)
                    {
                        return Verdict::BadError(format!(
                            "location {l} outside {CONFIG_NAME} ({lines} lines): {problem}"
                        ));
                    }
                }
                // What the user sees: the miette rendering with source snippets.
                let rendered = config::render(&err, false);
                if rendered.trim().is_empty() {
                    return Verdict::BadError(format!("empty rendering of {err:?}"));
                }
                let first = err.errors().first().map(|e| {
                    let located = if e.location().is_some() {
                        "at"
                    } else {
                        "unlocated"
                    };
                    let message = e.to_string();
                    let words: Vec<&str> = message
                        .split_whitespace()
                        .take(2)
                        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()))
                        .collect();
                    format!("{located}: {}", words.join(" "))
                });
                Verdict::Refused(first.unwrap_or_default())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Saved plans: `plan::file::load`, what `berth apply PLANFILE` reads.
pub struct PlanFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PlanFile {
    pub fn new() -> PlanFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fuzz.plan");
        PlanFile { _dir: dir, path }
    }
}

/// A smaller copy of a JSON document with the same shape: every array cut to its first
/// element and long strings shortened. Small seeds make many more inputs per second, and the
/// mutations grow them again where it matters.
fn trimmed(json: &[u8]) -> Option<Vec<u8>> {
    fn trim(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Array(items) => {
                items.truncate(1);
                items.iter_mut().for_each(trim);
            }
            serde_json::Value::Object(map) => map.values_mut().for_each(trim),
            serde_json::Value::String(s) if s.len() > 120 => {
                let mut end = 120;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(json).ok()?;
    trim(&mut value);
    serde_json::to_vec_pretty(&value).ok()
}

/// `seeds` and their trimmed copies.
fn with_trimmed(seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let small: Vec<Vec<u8>> = seeds.iter().filter_map(|s| trimmed(s)).collect();
    seeds.into_iter().chain(small).collect()
}

/// Plans made by the berth binary (`plan -out`) on scratch copies of the examples.
pub fn saved_plans() -> Vec<Vec<u8>> {
    let mut plans = Vec::new();
    for example in examples() {
        let scratch = tempfile::tempdir().expect("temp dir");
        copy_dir(&example, scratch.path());
        let out = scratch.path().join("made.plan");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("-C")
            .arg(scratch.path())
            .args(["plan", "-lock=false", "-out"])
            .arg(&out)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok()
            && let Ok(bytes) = std::fs::read(&out)
        {
            plans.push(bytes);
        }
    }
    plans
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("example dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

impl Target for PlanFile {
    fn name(&self) -> &'static str {
        "plan"
    }

    fn syntax(&self) -> Syntax {
        Syntax::Json
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let plans = saved_plans();
        assert!(
            !plans.is_empty(),
            "berth plan -out made no plan of any example"
        );
        with_trimmed(plans)
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        match load_plan(&self.path, input) {
            Ok(_) => Verdict::Accepted,
            Err(verdict) => verdict,
        }
    }
}

/// Writes `input` to `path` and reads it with `plan::file::load`: the plan when it is accepted
/// and serializes again, else the verdict (a refusal that names the file, or a bad error).
fn load_plan(path: &Path, input: &[u8]) -> Result<plan::Plan, Verdict> {
    std::fs::write(path, input).expect("write scratch plan");
    match plan::file::load(path) {
        Ok(plan) => match serde_json::to_vec(&plan) {
            Ok(_) => Ok(plan),
            Err(e) => Err(Verdict::BadError(format!(
                "accepted plan does not serialize: {e}"
            ))),
        },
        Err(err) => {
            let message = err.to_string();
            if !message.contains(&path.display().to_string()) {
                return Err(Verdict::BadError(format!(
                    "error does not name the file: {message}"
                )));
            }
            let kind = variant(&format!("{err:?}"));
            if kind == "NotAPlan" && message.contains("not JSON") && !message.contains("line ") {
                return Err(Verdict::BadError(format!(
                    "JSON error without a line: {message}"
                )));
            }
            Err(Verdict::Refused(kind))
        }
    }
}

/// Saved plans, resealed after mutation (`plan::file::reseal`): nearly every mutated plan dies
/// at the seal check in `plan`, so here the seal is made to match, and the mutations reach
/// what stands behind it: the checks of `format_version`, the deserializer of every field,
/// and, for a plan it accepts, apply's comparison with the plan made now
/// (`apply::freshness::stale_reasons`). The oracle there: against each seed plan (a plan
/// `berth plan -out` made, standing for "planned now"), an accepted plan that differs in what
/// apply acts on (moves, steps, steps left out, errors, es.xml path and diff, fingerprints,
/// host room) must have at least one stale reason, or apply would run a plan nobody reviewed.
pub struct ResealedPlanFile {
    file: PlanFile,
    seeds: Vec<Vec<u8>>,
    /// The seeds as plans: what "planned now" is compared with.
    references: Vec<plan::Plan>,
}

impl ResealedPlanFile {
    pub fn new() -> ResealedPlanFile {
        let file = PlanFile::new();
        let seeds = file.seeds();
        let references = seeds
            .iter()
            .filter_map(|s| plan::file::parse(Path::new("seed.plan"), s).ok())
            .collect();
        ResealedPlanFile {
            file,
            seeds,
            references,
        }
    }
}

/// The members of a plan apply acts on or checks, as JSON (steps in id order and hosts in name
/// order: apply runs steps by their dependencies, and reads hosts by name, not by their place
/// in the file).
fn acted_on(plan: &plan::Plan) -> Vec<(&'static str, serde_json::Value)> {
    fn json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
    }
    let mut steps: Vec<&berth::schedule::Step> = plan.steps.iter().collect();
    steps.sort_by(|a, b| a.id.cmp(&b.id));
    let mut hosts: Vec<&plan::HostSummary> = plan.hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    vec![
        ("moves", json(&plan.moves)),
        ("steps", json(&steps)),
        ("skipped_steps", json(&plan.skipped_steps)),
        ("errors", json(&plan.errors)),
        ("es_xml_path", json(&plan.es_xml_path)),
        ("es_xml_diff", json(&plan.es_xml_diff)),
        ("fingerprints", json(&plan.fingerprints)),
        ("hosts", json(&hosts)),
    ]
}

impl Target for ResealedPlanFile {
    fn name(&self) -> &'static str {
        "plan_resealed"
    }

    fn syntax(&self) -> Syntax {
        Syntax::Json
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        // What is not a JSON object cannot be resealed: it goes in as it is.
        let resealed = plan::file::reseal(input, None);
        let input = resealed.as_deref().unwrap_or(input);
        let saved = match load_plan(&self.file.path, input) {
            Ok(plan) => plan,
            Err(verdict) => return verdict,
        };
        let fields = acted_on(&saved);
        for now in &self.references {
            let reasons = berth::apply::freshness::stale_reasons(&saved, now);
            let differing: Vec<&str> = fields
                .iter()
                .zip(acted_on(now))
                .filter(|((_, a), (_, b))| *a != *b)
                .map(|((name, _), _)| *name)
                .collect();
            if !differing.is_empty() && reasons.is_empty() {
                return Verdict::BadError(format!(
                    "accepted plan differs from a plan made now in {differing:?}, \
                     and apply's comparison finds no difference"
                ));
            }
        }
        Verdict::Accepted
    }
}

// ---------------------------------------------------------------------------------------------

/// The state file: `StateStore::load`, what `apply`, `state list` and `plan` read.
pub struct StateFile {
    _dir: tempfile::TempDir,
    store: StateStore,
}

impl StateFile {
    pub fn new() -> StateFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = StateStore::open(dir.path().join("berth.state.json")).expect("state store");
        StateFile { _dir: dir, store }
    }
}

/// States written by `StateStore::save`: an empty one, and ones with topology, journal and an
/// apply in progress, made from the plans of the examples.
fn saved_states() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("berth.state.json");
    let store = StateStore::open(&path).expect("state store");
    let mut out = Vec::new();
    let mut save = |state: &mut state::State| {
        let _ = std::fs::remove_file(&path);
        store.save(state).expect("save state");
        out.push(std::fs::read(&path).expect("read state"));
    };
    save(&mut state::State::new());

    let scratch = tempfile::tempdir().expect("temp dir");
    for (n, bytes) in saved_plans().into_iter().enumerate() {
        let file = scratch.path().join(format!("{n}.plan"));
        std::fs::write(&file, bytes).expect("write plan");
        let Ok(plan) = plan::file::load(&file) else {
            continue;
        };
        let mut state = state::State::new();
        for (k, step) in plan.steps.iter().enumerate() {
            state.topology.insert(
                step.guest.clone(),
                state::GuestRecord {
                    host: step.to.clone(),
                    state: berth::inventory::GuestState::ShutOff,
                    last_definition_xml: Some(format!(
                        "<domain><name>{}</name></domain>",
                        step.guest
                    )),
                    detached_interfaces: vec![state::DetachedInterface {
                        mac: Some("52:54:00:00:00:01".to_string()),
                        source: "0000:3b:02.1".to_string(),
                        xml: "<interface type='hostdev'/>".to_string(),
                    }],
                },
            );
            state.upsert(state::JournalEntry {
                plan_id: format!("plan-{n}"),
                step_id: step.id.clone(),
                kind: step.kind,
                guest: step.guest.clone(),
                from: step.from.clone(),
                to: step.to.clone(),
                status: [
                    state::StepStatus::Done,
                    state::StepStatus::Failed,
                    state::StepStatus::Running,
                    state::StepStatus::Pending,
                    state::StepStatus::Skipped,
                ][k % 5],
                started_at: Some(chrono::Utc::now()),
                finished_at: (k % 2 == 0).then(chrono::Utc::now),
                error: (k % 5 == 1).then(|| "virDomainDefineXML: failed".to_string()),
                boot_id: (k % 3 == 0).then(|| "6f1c2a54-1b0e-4d4e-9a43-0d3f2b7c9e11".to_string()),
                once_marker: (k % 4 == 0)
                    .then(|| "berth-once-5b0c8f7e2d3a4c1b9e6f0a7d8c2b1e4f".to_string()),
            });
        }
        state.in_progress = Some(state::InProgress {
            plan_id: format!("plan-{n}-0001"),
            plan,
            targets: (n % 2 == 1).then(|| ["g".to_string()].into_iter().collect()),
            started_at: chrono::Utc::now(),
            es_xml_backup: Some(PathBuf::from("es.xml.berth-backup")),
        });
        save(&mut state);
    }
    out
}

impl Target for StateFile {
    fn name(&self) -> &'static str {
        "state"
    }

    fn syntax(&self) -> Syntax {
        Syntax::Json
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        with_trimmed(saved_states())
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        std::fs::write(self.store.path(), input).expect("write scratch state");
        match self.store.load() {
            Ok(Some(state)) => {
                if state.version != state::FORMAT_VERSION {
                    return Verdict::BadError(format!(
                        "accepted a state of version {}",
                        state.version
                    ));
                }
                match serde_json::to_vec(&state) {
                    Ok(_) => Verdict::Accepted,
                    Err(e) => Verdict::BadError(format!("accepted state does not serialize: {e}")),
                }
            }
            Ok(None) => Verdict::BadError("a written state file read as absent".to_string()),
            Err(err) => {
                let message = err.to_string();
                if !message.contains(&self.store.path().display().to_string()) {
                    return Verdict::BadError(format!("error does not name the file: {message}"));
                }
                let label = match &err {
                    // serde_json's message carries line and column (the error type promises it).
                    StateError::Parse { error, .. } => {
                        if error.line() == 0 || error.line() > line_count(input) {
                            return Verdict::BadError(format!(
                                "parse error at line {} of a {}-line file: {message}",
                                error.line(),
                                line_count(input)
                            ));
                        }
                        format!("Parse {:?}", error.classify())
                    }
                    other => variant(&format!("{other:?}")),
                };
                Verdict::Refused(label)
            }
        }
    }
}

/// Every target by name, for the long-run driver.
pub fn by_name(name: &str, full: bool) -> Option<Box<dyn Target>> {
    Some(match name {
        "esxml" => Box::new(EsXml {
            max_seed_len: if full { usize::MAX } else { 128 << 10 },
        }),
        "config" => Box::new(Config),
        "plan" => Box::new(PlanFile::new()),
        "plan_resealed" => Box::new(ResealedPlanFile::new()),
        "state" => Box::new(StateFile::new()),
        _ => return None,
    })
}

pub const NAMES: [&str; 5] = ["esxml", "config", "plan", "plan_resealed", "state"];
