//! libvirt's and libxml2's own error printing, routed into `tracing`, and libvirt messages made
//! one line.
//!
//! libvirt prints every error to stderr through its default error callback, and libxml2 (which
//! libvirt parses XML with) prints warnings such as `I/O warning : failed to load external
//! entity "…/node.xml"` through its generic error handler. berth reports each failure itself,
//! with the host and URI, so both are sent to `tracing` at debug level (`berth -vv` shows them)
//! and nothing raw reaches stderr.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Once;

/// Installs both routes, once per process. Called at startup (before any thread exists, so
/// every thread inherits libxml2's handler) and again before each connection, for library users.
pub fn route_errors_to_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `libvirt_error` matches virErrorFunc and only reads the error it is given.
        unsafe { virt::sys::virSetErrorFunc(std::ptr::null_mut(), Some(libvirt_error)) };
        libxml2::install();
    });
    // libxml2's handler is per thread: set it for this one too, if it was created earlier.
    libxml2::install_for_this_thread();
}

/// libvirt's message on one line. libvirt's XML errors carry the offending line and a caret
/// under it (`…tag mismatch: cpu line 2 and node\n</node>\n-------^`); printed as is they break
/// the layout, and the renderers would show the newlines as `\u{a}`. The context line is kept,
/// quoted, and the caret line dropped.
pub fn one_line(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '-' || c == '^' || c == ' '));
    let mut text = lines.next().unwrap_or_default().to_string();
    for line in lines {
        text.push_str(&format!(" (near `{line}`)"));
    }
    text
}

/// The one-line message of a libvirt error (without the `[code=…, domain=…]` of its Display).
pub fn message(e: &virt::error::Error) -> String {
    one_line(e.message())
}

extern "C" fn libvirt_error(_data: *mut c_void, error: virt::sys::virErrorPtr) {
    if error.is_null() {
        return;
    }
    // SAFETY: libvirt passes a valid error for the duration of the call; `message` is a C
    // string or null.
    let (code, domain, text) = unsafe {
        let e = &*error;
        let text = if e.message.is_null() {
            String::new()
        } else {
            CStr::from_ptr(e.message).to_string_lossy().into_owned()
        };
        (e.code, e.domain, text)
    };
    tracing::debug!(target: "libvirt", code, domain, "{}", one_line(&text));
}

/// libxml2's generic error handler, found with `dlsym` in the libxml2 libvirt already loaded
/// (so berth does not link libxml2 itself, and does nothing if it is absent).
mod libxml2 {
    use super::*;

    /// `xmlGenericErrorFunc` is variadic (`void (*)(void *ctx, const char *msg, ...)`), which
    /// stable Rust cannot define. On the SysV x86-64 and AAPCS64 Linux ABIs a variadic call
    /// passes its first integer and pointer arguments in the same registers as a plain call, so
    /// a plain function with three trailing arguments receives the format and its first two
    /// arguments; [`fragment`] reads them only for the formats libxml2's reporting uses (`%s`,
    /// `%s:%d: `, and text without conversions).
    type Setter = unsafe extern "C" fn(*mut c_void, *const c_void);

    unsafe extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }

    fn setter(name: &CStr) -> Option<Setter> {
        if !cfg!(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        )) {
            return None;
        }
        // SAFETY: dlsym with RTLD_DEFAULT (null) only looks a symbol up.
        let symbol = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
        // SAFETY: both looked-up functions take (void *ctx, xmlGenericErrorFunc handler).
        (!symbol.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, Setter>(symbol) })
    }

    fn handler() -> *const c_void {
        generic_error as *const c_void
    }

    /// Sets the handler for threads created from now on (`xmlThrDefSetGenericErrorFunc`) and
    /// for this one.
    pub(super) fn install() {
        if let Some(set) = setter(c"xmlThrDefSetGenericErrorFunc") {
            // SAFETY: see `setter`; the handler lives for the whole program.
            unsafe { set(std::ptr::null_mut(), handler()) };
        }
        install_for_this_thread();
    }

    pub(super) fn install_for_this_thread() {
        thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if DONE.with(|d| d.replace(true)) {
            return;
        }
        if let Some(set) = setter(c"xmlSetGenericErrorFunc") {
            // SAFETY: as above.
            unsafe { set(std::ptr::null_mut(), handler()) };
        }
    }

    thread_local!(static PENDING: RefCell<String> = const { RefCell::new(String::new()) });

    /// libxml2 reports one message in several calls (`file:line: `, `I/O `, `warning : `, the
    /// text, `\n`): they are gathered per thread and sent on at each newline.
    extern "C" fn generic_error(_ctx: *mut c_void, format: *const c_char, a1: usize, a2: usize) {
        if format.is_null() {
            return;
        }
        // SAFETY: libxml2 passes a C format string; `fragment` reads the arguments only for
        // formats whose conversions make them a C string (and an int).
        let piece = unsafe { fragment(CStr::from_ptr(format), a1, a2) };
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            pending.push_str(&piece);
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let line = line.trim();
                if !line.is_empty() {
                    tracing::debug!(target: "libxml2", "{line}");
                }
            }
        });
    }

    /// The text of one call. # Safety: `a1` must be a C string when the format starts with `%s`.
    unsafe fn fragment(format: &CStr, a1: usize, a2: usize) -> String {
        let text = |p: usize| {
            if p == 0 {
                String::new()
            } else {
                // SAFETY: the caller's contract.
                unsafe { CStr::from_ptr(p as *const c_char) }
                    .to_string_lossy()
                    .into_owned()
            }
        };
        let format = format.to_string_lossy();
        match format.as_ref() {
            "%s" => text(a1),
            "%s\n" => text(a1) + "\n",
            "%s:%d: " => format!("{}:{}: ", text(a1), a2 as c_int),
            f if !f.contains('%') => f.to_string(),
            // Another format: its conversions are not read; the words still say what happened.
            f => f.to_string(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fragments_of_libxml2_reports() {
            let file = c"/tmp/nodes/a.xml";
            let at = file.as_ptr() as usize;
            // SAFETY: `at` is a C string for the `%s` formats.
            unsafe {
                assert_eq!(fragment(c"%s", at, 0), "/tmp/nodes/a.xml");
                assert_eq!(fragment(c"%s:%d: ", at, 3), "/tmp/nodes/a.xml:3: ");
                assert_eq!(fragment(c"I/O ", 0, 0), "I/O ");
                assert_eq!(fragment(c"%s", 0, 0), "");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_errors_become_one_line_with_their_context() {
        assert_eq!(
            one_line(
                "/n/a.xml:3: Opening and ending tag mismatch: cpu line 2 and node\n</node>\n-------^\n"
            ),
            "/n/a.xml:3: Opening and ending tag mismatch: cpu line 2 and node (near `</node>`)"
        );
        assert_eq!(one_line("Domain not found\n"), "Domain not found");
        assert_eq!(one_line("plain"), "plain");
    }
}
