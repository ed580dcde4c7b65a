//! Opening the Zenoh session of a bridge: explicit endpoints, no multicast scouting, and the
//! user's own Zenoh configuration file (TLS, mutual TLS, access control) when given.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Network options shared by `export`, `import` and `bench`.
#[derive(Debug, Clone, Args)]
pub struct NetOptions {
    /// Listen for the other side on this Zenoh endpoint (e.g. tcp/0.0.0.0:7447); repeatable.
    #[arg(long = "listen", value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Connect to the other side at this Zenoh endpoint (e.g. tcp/192.0.2.7:7447); repeatable.
    #[arg(long = "connect", value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// A Zenoh configuration file (JSON5), for TLS, mutual TLS, access control and any other
    /// Zenoh setting; --listen/--connect add to it. Without it, multicast scouting is off.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set one Zenoh configuration value, as PATH=JSON5 (e.g. transport/link/tx/lease=2000);
    /// repeatable, applied last.
    #[arg(long = "zenoh", value_name = "PATH=JSON5")]
    pub zenoh: Vec<String>,
    /// Lossy mode: the exporter never waits for importers; frames lost on the way reach local
    /// readers as missed.
    #[arg(long)]
    pub lossy: bool,
    /// Seconds without a word from the other side before it is taken as dead (importer: the
    /// local writer is then abandoned, so its readers drain and get WRITER_DEAD).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub lease: f64,
    /// Run as a task of a pipeline (`shmline run` sets this): STREAM is then the name of the
    /// task's parameter bound to the stream, joined through SHMLINE_PIPELINE and SHMLINE_TASK.
    #[arg(long)]
    pub pipeline: bool,
}

/// Joins the pipeline this bridge runs as a task of (see [`NetOptions::pipeline`]).
pub fn join_task() -> Result<shmline::pipeline::Task, String> {
    shmline::pipeline::Task::join().map_err(|e| format!("cannot join the pipeline: {e}"))
}

impl NetOptions {
    /// The lease as a duration (at least 100 ms).
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease.max(0.1))
    }

    /// Opens the Zenoh session these options describe.
    pub fn open(&self) -> Result<zenoh::Session, String> {
        use zenoh::Wait;
        let mut config = match &self.config {
            Some(path) => zenoh::Config::from_file(path).map_err(|e| {
                format!(
                    "cannot read the Zenoh configuration {}: {e}",
                    path.display()
                )
            })?,
            None => {
                let mut config = zenoh::Config::default();
                // Endpoints are explicit: nothing is announced or discovered on the LAN.
                set(&mut config, "scouting/multicast/enabled", "false")?;
                // Listen only where asked (Zenoh's default listens on every interface).
                set(&mut config, "listen/endpoints", "[]")?;
                config
            }
        };
        if !self.listen.is_empty() {
            set(&mut config, "listen/endpoints", &json_list(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set(&mut config, "connect/endpoints", &json_list(&self.connect))?;
        }
        for item in &self.zenoh {
            let (path, value) = item.split_once('=').ok_or_else(|| {
                format!("--zenoh {item:?}: expected PATH=JSON5, e.g. transport/link/tx/lease=2000")
            })?;
            set(&mut config, path, value)?;
        }
        zenoh::open(config)
            .wait()
            .map_err(|e| format!("cannot open the Zenoh session: {e} (check --listen/--connect)"))
    }
}

fn set(config: &mut zenoh::Config, path: &str, value: &str) -> Result<(), String> {
    config
        .insert_json5(path, value)
        .map_err(|e| format!("Zenoh configuration {path} = {value}: {e}"))
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// The Zenoh keys a bridge uses under the user's key `KEY`.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Exporter to importers: batches, heartbeats, end, death.
    pub data: String,
    /// Importer `ID` to exporter: `KEY/ctl/ID`.
    pub ctl_prefix: String,
    /// The exporter's queryable answering with the stream's geometry and schema.
    pub schema: String,
    /// Liveliness token of the exporter.
    pub alive_exporter: String,
    /// Liveliness tokens of the importers: `KEY/alive/importer/ID`.
    pub alive_importer_prefix: String,
}

impl Keys {
    /// The keys under `key`.
    pub fn new(key: &str) -> Result<Keys, String> {
        if key.is_empty() || key.contains(['*', '$', '?', '#']) || key.ends_with('/') {
            return Err(format!(
                "--key {key:?}: a Zenoh key without wildcards, e.g. lab/camera1"
            ));
        }
        Ok(Keys {
            data: format!("{key}/data"),
            ctl_prefix: format!("{key}/ctl"),
            schema: format!("{key}/schema"),
            alive_exporter: format!("{key}/alive/exporter"),
            alive_importer_prefix: format!("{key}/alive/importer"),
        })
    }
}

/// The facts about the origin stream an importer needs to make its local copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// Largest frame in bytes.
    pub max_frame_size: u32,
    /// Slots of the origin ring.
    pub capacity: u32,
    /// Whether frames carry a CRC32C.
    pub checksum: bool,
    /// The schema (dtype, shape), if any.
    pub schema: Option<(String, Vec<u64>)>,
}

impl StreamDescription {
    /// Describes `info`.
    pub fn of(info: &shmline::StreamInfo) -> StreamDescription {
        StreamDescription {
            max_frame_size: info.max_frame_size,
            capacity: info.capacity,
            checksum: info.checksum,
            schema: info
                .schema
                .as_ref()
                .map(|s| (s.dtype().to_owned(), s.shape().to_vec())),
        }
    }

    /// As `key=value` lines (the queryable's reply).
    pub fn encode(&self) -> String {
        let mut out = format!(
            "max_frame_size={}\ncapacity={}\nchecksum={}\n",
            self.max_frame_size, self.capacity, self.checksum as u8
        );
        if let Some((dtype, shape)) = &self.schema {
            let shape: Vec<String> = shape.iter().map(u64::to_string).collect();
            out += &format!("dtype={dtype}\nshape={}\n", shape.join(","));
        }
        out
    }

    /// Parses [`StreamDescription::encode`]'s output.
    pub fn decode(text: &str) -> Result<StreamDescription, String> {
        let mut d = StreamDescription {
            max_frame_size: 0,
            capacity: 0,
            checksum: false,
            schema: None,
        };
        let (mut dtype, mut shape) = (None, Vec::new());
        for line in text.lines() {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("bad stream description line {line:?}"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("bad number {v:?} for {k} in the stream description"))
            };
            match k {
                "max_frame_size" => d.max_frame_size = num(v)? as u32,
                "capacity" => d.capacity = num(v)? as u32,
                "checksum" => d.checksum = v == "1",
                "dtype" => dtype = Some(v.to_owned()),
                "shape" if !v.is_empty() => {
                    shape = v.split(',').map(num).collect::<Result<_, _>>()?
                }
                _ => {}
            }
        }
        if d.max_frame_size == 0 || d.capacity == 0 {
            return Err("the stream description lacks max_frame_size or capacity".into());
        }
        d.schema = dtype.map(|t| (t, shape));
        Ok(d)
    }
}
