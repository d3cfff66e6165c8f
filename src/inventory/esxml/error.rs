//! The one error type of the es.xml layer: where (file, line, column, element) and what.

use crate::size::SizeError;

pub use super::position::Location;

/// An es.xml problem. Displays as `es.xml:304:13: <machine id="g1">: <guestMemory> "lots" …`.
/// The details sit behind one box so that the many `Result`s of the parser stay small; fields
/// read through `Deref` (`err.kind`, `err.location`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.0.describe())]
pub struct EsXmlError(Box<EsXmlErrorDetail>);

#[derive(Debug, Clone, PartialEq)]
pub struct EsXmlErrorDetail {
    /// The file name as the caller gave it (usually the path of es.xml).
    pub source_name: String,
    /// Where in the file, when the problem has a place.
    pub location: Option<Location>,
    /// The element concerned, e.g. `<machine id="exa01adm01vm01_id">`; empty for the whole file.
    pub element: String,
    pub kind: EsXmlErrorKind,
}

impl std::ops::Deref for EsXmlError {
    type Target = EsXmlErrorDetail;
    fn deref(&self) -> &EsXmlErrorDetail {
        &self.0
    }
}

impl EsXmlError {
    pub fn new(
        source_name: &str,
        location: Option<Location>,
        element: impl Into<String>,
        kind: EsXmlErrorKind,
    ) -> Self {
        EsXmlError(Box::new(EsXmlErrorDetail {
            source_name: source_name.to_string(),
            location,
            element: element.into(),
            kind,
        }))
    }

    /// The 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }
}

impl EsXmlErrorDetail {
    fn describe(&self) -> String {
        let mut out = self.source_name.clone();
        if let Some(Location { line, column }) = self.location {
            out.push_str(&format!(":{line}:{column}"));
        }
        out.push_str(": ");
        if !self.element.is_empty() {
            out.push_str(&self.element);
            out.push_str(": ");
        }
        out.push_str(&self.kind.to_string());
        out
    }
}

/// `<machine id="…">`, the way messages name a machine.
pub fn machine_element(id: &str) -> String {
    format!("<machine id=\"{id}\">")
}

/// What is wrong. Each message is written to follow `file:line:col: <element>: `.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EsXmlErrorKind {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error(
        "the file ends before <{open}> (opened at line {open_line}) is closed: es.xml is truncated"
    )]
    Truncated { open: String, open_line: usize },
    #[error(
        "no root element: the file is empty or holds no XML element (expected <engineeredSystem>)"
    )]
    NoRoot,
    #[error(
        "the root element is <{found}>, expected <engineeredSystem>: this is not an OEDA es.xml{hint}"
    )]
    WrongRoot { found: String, hint: String },
    #[error("element after the end of the root element <engineeredSystem>")]
    ContentAfterRoot,
    #[error(
        "osType {os_type}: this is a Xen (OVM) system (LinuxDom0 hosts, LinuxGuest guests); \
         berth handles KVM only (osType LinuxKVM hosts with LinuxKVMGuest guests)"
    )]
    Xen { os_type: String },
    #[error(
        "no KVM host (machineType compute, osType LinuxKVM) in the file: berth handles KVM systems only"
    )]
    NoKvmHosts,
    #[error("has no `{0}` attribute")]
    MissingAttribute(&'static str),
    #[error("has no <{0}> (or it is empty)")]
    MissingElement(&'static str),
    #[error("<{name}> appears twice (first at line {first_line})")]
    DuplicateElement {
        name: &'static str,
        first_line: usize,
    },
    #[error("duplicate {what} id: already used at line {first_line}")]
    DuplicateId {
        what: &'static str,
        first_line: usize,
    },
    #[error(
        "duplicate hostName \"{name}\": also the hostName of <machine id=\"{first_id}\"> at line {first_line}"
    )]
    DuplicateHostName {
        name: String,
        first_id: String,
        first_line: usize,
    },
    /// A host or guest name that could be read as syntax where berth uses it (a URI, an SSH
    /// destination, a command line).
    #[error("<hostName> \"{name}\" is not a valid {what} name: {why}")]
    BadName {
        name: String,
        what: &'static str,
        why: String,
    },
    #[error(
        "machineType {machine_type} contradicts osType {os_type} (KVM hosts and guests are machineType compute)"
    )]
    ConflictingMachineType {
        machine_type: String,
        os_type: String,
    },
    #[error("lists guest <machine id=\"{id}\"/>, but no <machine> has that id")]
    UnknownGuestReference { id: String },
    #[error(
        "lists <machine id=\"{id}\"/> as a guest, but that machine has osType {os_type}, not LinuxKVMGuest"
    )]
    NotAGuest { id: String, os_type: String },
    #[error("lists guest <machine id=\"{id}\"/> twice")]
    GuestListedTwice { id: String },
    #[error(
        "has child <machine id=…/> references but is not a KVM host (osType {os_type}); only LinuxKVM hosts list guests"
    )]
    NotAHost { os_type: String },
    #[error(
        "guest \"{name}\" is listed by no KVM host: no host <machine> has a child <machine id=\"{id}\"/>"
    )]
    NoParentHost { id: String, name: String },
    #[error(
        "guest \"{name}\" is listed by two KVM hosts, \"{first}\" (line {first_line}) and \"{second}\" \
         (line {second_line}); exactly one host must list it"
    )]
    TwoParentHosts {
        name: String,
        first: String,
        first_line: usize,
        second: String,
        second_line: usize,
    },
    #[error("refers to {what} id \"{id}\", which is not defined")]
    UnknownReference { what: &'static str, id: String },
    #[error(
        "cluster VIP lists <machine id=\"{id}\"/>, which {found}; VIP members must be KVM guests"
    )]
    VipNotAGuest { id: String, found: String },
    #[error("<{field}>: {source}")]
    BadSize {
        field: &'static str,
        source: SizeError,
    },
    #[error("<{field}> \"{text}\" is not {expected}")]
    BadValue {
        field: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error("move of guest \"{guest}\": there is no KVM guest with that machine id")]
    MoveUnknownGuest { guest: String },
    #[error("move of guest \"{guest}\": there is no KVM host with machine id \"{host}\"")]
    MoveUnknownHost { guest: String, host: String },
    #[error("move of guest \"{guest}\": it is on host \"{actual}\", not on \"{expected}\"")]
    MoveWrongSource {
        guest: String,
        expected: String,
        actual: String,
    },
    #[error("move of guest \"{guest}\": source and target are the same host \"{host}\"")]
    MoveToSameHost { guest: String, host: String },
    #[error("guest \"{guest}\" is moved more than once in one rewrite")]
    MovedTwice { guest: String },
    #[error("the rewritten es.xml is inconsistent ({0}); nothing was written")]
    RewriteCheck(String),
}
