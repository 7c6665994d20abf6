//! Running, resuming and merging power runs on disk (see [`super::store`]
//! for the file rules that make them crash-safe).

use super::store::{self, DirLock, Layout, Manifest, RepReader, Scan};
use super::{
    config_hash, legacy_config_hash, summary_from_tally, PowerStudy, Record, Summary, Tally,
};
use crate::config::Config;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The most replicates one run may ask for (10⁹: about a day of REFOCUS
/// replicates on 2 cores; larger values are almost always a typo).
pub const MAX_REPS: u64 = 1_000_000_000;

/// Seconds between syncs of `replicates.csv` to disk during a run (a crash
/// of the process loses nothing already written; a power cut loses at most
/// this much).
const SYNC_SECONDS: u64 = 5;

/// Options of a power run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub reps: u64,
    pub seed: u64,
    pub threads: usize,
    pub shard: (u64, u64),
    pub out: Option<PathBuf>,
    pub resume: bool,
}

/// Worker threads: as asked, but at most the available cores (more would
/// only add overhead; results do not depend on the count). Returns the
/// count and, when it was capped, a note saying so.
pub fn worker_threads(asked: Option<usize>) -> Result<(usize, Option<String>)> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match asked {
        None => Ok((cores, None)),
        Some(0) => Err(Error::Usage(
            "--threads 0: must be at least 1 (omit it to use every core)".into(),
        )),
        Some(t) if t > cores => Ok((
            cores,
            Some(format!(
                "--threads {t}: this machine has {cores} cores; using {cores}"
            )),
        )),
        Some(t) => Ok((t, None)),
    }
}

impl Default for RunOptions {
    /// 1000 replicates, seed 1, every core, one shard, nothing stored.
    fn default() -> RunOptions {
        RunOptions {
            reps: 1000,
            seed: 1,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            shard: (1, 1),
            out: None,
            resume: false,
        }
    }
}

impl RunOptions {
    /// These options with `reps` replicates.
    pub fn reps(mut self, reps: u64) -> RunOptions {
        self.reps = reps;
        self
    }

    /// These options with `seed`.
    pub fn seed(mut self, seed: u64) -> RunOptions {
        self.seed = seed;
        self
    }

    /// These options with `threads` worker threads (results do not depend on it).
    pub fn threads(mut self, threads: usize) -> RunOptions {
        self.threads = threads;
        self
    }

    /// These options streaming replicates to (and resuming from) `dir`.
    pub fn out(mut self, dir: impl Into<PathBuf>, resume: bool) -> RunOptions {
        self.out = Some(dir.into());
        self.resume = resume;
        self
    }

    /// Check the replicate count.
    pub fn validate(&self) -> Result<()> {
        if self.reps == 0 || self.reps > MAX_REPS {
            return Err(Error::Usage(format!(
                "--reps {}: must be between 1 and {MAX_REPS}",
                self.reps
            )));
        }
        Ok(())
    }
}

/// Run (or resume) a study; records stream to `out/replicates.csv` batch by
/// batch. Returns the summary of this run (shard): replicates below
/// `opts.reps` that belong to the shard.
pub fn execute(
    study: &PowerStudy,
    opts: &RunOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary> {
    opts.validate()?;
    let layout = Layout {
        methods: study.methods.len(),
        scenarios: study.scenarios(),
        shard: opts.shard,
    };
    let total = layout.count_below(opts.reps);
    let mut tally = study.tally();
    let reps = opts.reps;
    let mut feed = |r: &Record| {
        if r.rep < reps {
            tally.add(r);
        }
    };
    let mut sink: Option<Appender> = None;
    let mut next_pos = 0u64;
    let _lock;
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        _lock = DirLock::acquire(dir)?;
        let (pos, appender) = open_run_dir(study, opts, layout, dir, &mut feed)?;
        next_pos = pos;
        sink = Some(appender);
    }
    let mut finished = next_pos.min(total);
    progress(finished, total);
    let per = layout.per_rep() as u64;
    let todo = (next_pos..total).map_while(|p| layout.rep(p));
    study.run(opts.seed, todo, opts.threads, |batch| {
        if let Some(a) = sink.as_mut() {
            a.append(batch)?;
        }
        for r in batch {
            feed(r);
        }
        finished += batch.len() as u64 / per;
        progress(finished, total);
        Ok(())
    })?;
    if let Some(a) = sink.as_mut() {
        a.sync()?;
    }
    Ok(summary_from_tally(study, opts.seed, &tally))
}

/// Appends batches to `replicates.csv`: one write per batch, synced every
/// few seconds and at the end.
struct Appender {
    path: PathBuf,
    file: std::fs::File,
    buf: String,
    last_sync: std::time::Instant,
}

impl Appender {
    fn open(path: &Path) -> Result<Appender> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Appender {
            path: path.to_path_buf(),
            file,
            buf: String::new(),
            last_sync: std::time::Instant::now(),
        })
    }

    fn append(&mut self, batch: &[Record]) -> Result<()> {
        self.buf.clear();
        for r in batch {
            self.buf.push_str(&store::record_line(r));
            self.buf.push('\n');
        }
        self.file
            .write_all(self.buf.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        if self.last_sync.elapsed().as_secs() >= SYNC_SECONDS {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.last_sync = std::time::Instant::now();
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Prepare a locked run directory: check or write the manifest, fold the
/// finished replicates into the tally, repair the file if it is not a clean
/// prefix, and return the next position to run and the appender.
fn open_run_dir(
    study: &PowerStudy,
    opts: &RunOptions,
    layout: Layout,
    dir: &Path,
    feed: &mut dyn FnMut(&Record),
) -> Result<(u64, Appender)> {
    let manifest = Manifest {
        seed: opts.seed,
        config_hash: study.config_id.clone(),
        null: study.scenarios() == 2,
        shard: opts.shard,
        methods: study.methods.clone(),
        reps: Some(opts.reps),
    };
    let rpath = dir.join("replicates.csv");
    let cfg_text = &study.config_text;
    let (scan, complete) = if dir.join("run.json").exists() {
        let (old, _) = store::read_manifest(dir)?;
        let legacy = old.same_run_legacy(&manifest, &legacy_config_hash(cfg_text));
        if !old.same_run(&manifest) && !legacy {
            return Err(Error::Usage(format!(
                "{} holds a different run (seed, config, null scenario, shard or analyses differ); use another --out",
                dir.display()
            )));
        }
        let scan = store::scan(&rpath, &study.methods, layout, &mut *feed)?;
        let complete = store::complete_tail(&scan, layout);
        let finished = scan.prefix_reps + complete.len() as u64;
        if finished > 0 && !opts.resume {
            return Err(Error::Usage(format!(
                "{} already holds {finished} finished replicates; pass --resume to continue (or raise --reps to extend), or choose another --out",
                dir.display(),
            )));
        }
        if old.reps != manifest.reps || legacy {
            manifest.write(dir, cfg_text)?;
        }
        (scan, complete)
    } else {
        if !store::is_empty_dir(dir)? {
            return Err(Error::Usage(format!(
                "{} is not empty and holds no crtsim run (no run.json); choose a new or empty --out directory",
                dir.display()
            )));
        }
        manifest.write(dir, cfg_text)?;
        (Scan::default(), BTreeMap::new())
    };
    let next = if scan.exists && scan.clean {
        scan.prefix_reps
    } else {
        repair(study, opts, layout, &rpath, &scan, complete, feed)?
    };
    Ok((next, Appender::open(&rpath)?))
}

/// Rewrite `replicates.csv` as a clean prefix: the old clean prefix, then
/// the complete replicates found after it in replicate order, with any
/// missing replicate among them recomputed. Written beside the old file and
/// renamed over it. Returns the replicates the new file holds.
fn repair(
    study: &PowerStudy,
    opts: &RunOptions,
    layout: Layout,
    path: &Path,
    scan: &Scan,
    mut complete: BTreeMap<u64, Vec<Record>>,
    feed: &mut dyn FnMut(&Record),
) -> Result<u64> {
    let wanted = layout.count_below(opts.reps);
    let last = complete.keys().next_back().copied();
    let mut end = scan.prefix_reps;
    while complete.contains_key(&end) || (end < wanted && last.is_some_and(|l| end < l)) {
        end += 1;
    }
    let holes: Vec<u64> = (scan.prefix_reps..end)
        .filter(|p| !complete.contains_key(p))
        .filter_map(|p| layout.rep(p))
        .collect();
    study.run(opts.seed, holes, opts.threads, |batch| {
        for r in batch {
            let p = layout.pos(r.rep).expect("own replicate");
            complete.entry(p).or_default().push(*r);
        }
        Ok(())
    })?;
    store::atomic_write_with(path, |w| {
        if scan.exists && scan.prefix_bytes > 0 {
            store::copy_prefix(path, scan.prefix_bytes, w)?;
        } else {
            writeln!(w, "{}", store::HEADER)?;
        }
        for p in scan.prefix_reps..end {
            for r in &complete[&p] {
                writeln!(w, "{}", store::record_line(r))?;
                feed(r);
            }
        }
        Ok(())
    })?;
    Ok(end)
}

/// A merged run: its manifest (as a single run's), the study, the summary.
pub struct Merged {
    pub manifest: Manifest,
    pub study: PowerStudy,
    pub summary: Summary,
}

/// Lock a directory if it can be locked; a directory another run holds is
/// an error, one that cannot be written (read-only storage) is read as is.
fn lock_input(dir: &Path) -> Result<Option<DirLock>> {
    match DirLock::acquire(dir) {
        Ok(l) => Ok(Some(l)),
        Err(Error::Io { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Merge the shard directories of one run, checking that they belong
/// together, that every shard was asked for the same replicates, and that
/// the replicates are exactly 0..R−1. With `out`, write the merged run as a
/// single run would have (refusing a directory that holds anything else).
pub fn merge(dirs: &[PathBuf], out: Option<&Path>) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::Usage(
            "merge needs at least one run directory".into(),
        ));
    }
    let mut locks = Vec::new();
    let mut shards: BTreeMap<u64, (PathBuf, Manifest)> = BTreeMap::new();
    let mut first: Option<(Manifest, String)> = None;
    for d in dirs {
        locks.push(lock_input(d)?);
        let (m, cfg) = store::read_manifest(d)?;
        if let Some((f, _)) = &first {
            check_same_run(f, &m, &dirs[0], d)?;
        }
        if shards.insert(m.shard.0, (d.clone(), m.clone())).is_some() {
            return Err(Error::Usage(format!(
                "shard {}/{} is given twice",
                m.shard.0, m.shard.1
            )));
        }
        if first.is_none() {
            first = Some((m, cfg));
        }
    }
    let (m0, cfg_text) = first.expect("at least one directory");
    let n = m0.shard.1;
    if shards.len() as u64 != n {
        let missing: Vec<String> = (1..=n)
            .filter(|i| !shards.contains_key(i))
            .map(|i| format!("{i}/{n}"))
            .collect();
        return Err(Error::Usage(format!(
            "shards missing: {}",
            missing.join(", ")
        )));
    }
    let cfg = Config::from_toml_str(&cfg_text, &[])?;
    if config_hash(&cfg)? != m0.config_hash && legacy_config_hash(&cfg_text) != m0.config_hash {
        return Err(Error::Usage(format!(
            "{}: the config recorded in run.json does not match its config_hash (the manifest was edited); re-run the shards",
            dirs[0].join("run.json").display()
        )));
    }
    let study = PowerStudy::new(cfg, m0.null)?;
    let manifest = Manifest {
        shard: (1, 1),
        config_hash: study.config_id.clone(),
        ..m0.clone()
    };
    let mut readers = Vec::new();
    for (d, m) in shards.values() {
        readers.push(RepReader::open(
            &d.join("replicates.csv"),
            &m.methods,
            m.layout(),
        )?);
    }
    let mut stream = MergeStream {
        readers,
        dirs: shards.values().map(|(d, _)| d.clone()).collect(),
        reps: m0.reps,
        next: 0,
    };
    let mut tally = study.tally();
    match out {
        None => {
            while let Some(recs) = stream.next_rep()? {
                recs.iter().for_each(|r| tally.add(r));
            }
        }
        Some(o) => {
            std::fs::create_dir_all(o).map_err(|e| Error::io(o, e))?;
            let canon = |p: &Path| std::fs::canonicalize(p).ok();
            let is_input = dirs
                .iter()
                .any(|d| canon(d).is_some() && canon(d) == canon(o));
            let _lock = if is_input {
                None
            } else {
                Some(DirLock::acquire(o)?)
            };
            let target = MergeTarget {
                study: &study,
                manifest: &manifest,
                dir: o,
            };
            if store::is_empty_dir(o)? {
                target.write(&mut stream, &mut tally)?;
            } else {
                target.check_identical(&mut stream, &mut tally)?;
            }
        }
    }
    let summary = summary_from_tally(&study, m0.seed, &tally);
    if let Some(o) = out {
        super::store_summary(&study, &summary, o)?;
    }
    drop(locks);
    Ok(Merged {
        manifest,
        study,
        summary,
    })
}

fn check_same_run(f: &Manifest, m: &Manifest, d0: &Path, d: &Path) -> Result<()> {
    if f.seed != m.seed
        || f.config_hash != m.config_hash
        || f.null != m.null
        || f.methods != m.methods
    {
        return Err(Error::Usage(format!(
            "{} is not a shard of the same run as {}: seed, config or analyses differ (seed {} vs {}, config {} vs {})",
            d.display(),
            d0.display(),
            m.seed,
            f.seed,
            m.config_hash,
            f.config_hash
        )));
    }
    if f.shard.1 != m.shard.1 {
        return Err(Error::Usage(format!(
            "{} was split into {} shards, {} into {}",
            d.display(),
            m.shard.1,
            d0.display(),
            f.shard.1
        )));
    }
    if f.reps != m.reps {
        let show = |r: Option<u64>| r.map_or("an unrecorded number".to_string(), |r| r.to_string());
        return Err(Error::Usage(format!(
            "shard {}/{} ({}) was run with --reps {}, shard {}/{} ({}) with --reps {}: resume the shards with the same --reps before merging",
            m.shard.0,
            m.shard.1,
            d.display(),
            show(m.reps),
            f.shard.0,
            f.shard.1,
            d0.display(),
            show(f.reps)
        )));
    }
    Ok(())
}

/// Replicates 0, 1, 2, … taken in turn from the shards that hold them.
struct MergeStream {
    readers: Vec<RepReader>,
    dirs: Vec<PathBuf>,
    reps: Option<u64>,
    next: u64,
}

impl MergeStream {
    fn next_rep(&mut self) -> Result<Option<Vec<Record>>> {
        if self.reps.is_some_and(|r| self.next >= r) {
            return Ok(None);
        }
        let n = self.readers.len() as u64;
        let s = (self.next % n) as usize;
        match self.readers[s].next_rep()? {
            Some(recs) => {
                self.next += 1;
                Ok(Some(recs))
            }
            None => {
                let shard = format!("shard {}/{n} ({})", s + 1, self.dirs[s].display());
                if let Some(r) = self.reps {
                    return Err(Error::Usage(format!(
                        "{shard} stops before replicate {} of the run's {r}: finish it with `crtsim power ... --resume` before merging",
                        self.next
                    )));
                }
                // Older manifests do not record the replicates: every shard
                // must end here too, or the set is not 0..R-1.
                for (k, rd) in self.readers.iter_mut().enumerate() {
                    if k != s && rd.next_rep()?.is_some() {
                        return Err(Error::Usage(format!(
                            "{shard} stops before replicate {} but shard {}/{n} goes on: the replicates are not 0..R-1; finish the shards with `crtsim power ... --resume` before merging",
                            self.next,
                            k + 1
                        )));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// Where a merge writes: the study, the merged manifest and the directory.
struct MergeTarget<'a> {
    study: &'a PowerStudy,
    manifest: &'a Manifest,
    dir: &'a Path,
}

impl MergeTarget<'_> {
    fn write(&self, stream: &mut MergeStream, tally: &mut Tally) -> Result<()> {
        let (study, manifest, dir) = (self.study, self.manifest, self.dir);
        // The manifest first: a merge killed before the replicates are in place
        // leaves a directory that the next merge recognises and completes.
        let m = Manifest {
            reps: stream.reps,
            ..manifest.clone()
        };
        m.write(dir, &study.config_text)?;
        let mut failure: Option<Error> = None;
        let written = store::atomic_write_with(&dir.join("replicates.csv"), |w| {
            writeln!(w, "{}", store::HEADER)?;
            loop {
                match stream.next_rep() {
                    Ok(Some(recs)) => {
                        for r in &recs {
                            writeln!(w, "{}", store::record_line(r))?;
                            tally.add(r);
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        failure = Some(e);
                        return Err(std::io::Error::other("merge failed"));
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written?;
        if stream.reps.is_none() {
            let m = Manifest {
                reps: Some(tally.reps()),
                ..m
            };
            m.write(dir, &study.config_text)?;
        }
        Ok(())
    }

    /// A non-empty output directory is accepted only when it already holds
    /// exactly this merged run (then nothing is rewritten).
    fn check_identical(&self, stream: &mut MergeStream, tally: &mut Tally) -> Result<()> {
        let (manifest, dir) = (self.manifest, self.dir);
        let refuse = |why: &str| {
            Error::Usage(format!(
            "{} is not empty and {why}; merge writes only to a new or empty directory (or one holding this same merged run): choose another --out",
            dir.display()
        ))
        };
        let old = match store::read_manifest(dir) {
            Ok((m, _)) => m,
            Err(_) => return Err(refuse("holds no crtsim run")),
        };
        if !old.same_run(manifest) {
            return Err(refuse("holds a different run (or one of the shards)"));
        }
        if !dir.join("replicates.csv").exists() {
            // An earlier merge of this run stopped before its replicates landed.
            return self.write(stream, tally);
        }
        let layout = manifest.layout();
        let mut existing = RepReader::open(&dir.join("replicates.csv"), &manifest.methods, layout)
            .map_err(|_| refuse("holds a damaged run"))?;
        while let Some(recs) = stream.next_rep()? {
            let theirs = existing
                .next_rep()
                .map_err(|_| refuse("holds a damaged run"))?;
            let lines =
                |v: &[Record]| -> Vec<String> { v.iter().map(store::record_line).collect() };
            if theirs.as_deref().map(lines) != Some(lines(&recs)) {
                return Err(refuse("holds a different merged run"));
            }
            recs.iter().for_each(|r| tally.add(r));
        }
        if existing.next_rep().ok().flatten().is_some() {
            return Err(refuse("holds more replicates than this merge"));
        }
        Ok(())
    }
}
