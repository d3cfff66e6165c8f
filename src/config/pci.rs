//! Host PCI addresses as `lspci -D` prints them (`0000:3b:02.1`: domain, bus, slot, function),
//! the form `sriov_vfs` pools are written in and the form inventory reports hostdev sources in.

use std::fmt;

/// One host PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    /// Device number, 0–0x1f.
    pub slot: u8,
    /// Function number, 0–7.
    pub function: u8,
}

impl PciAddress {
    /// Parses `dddd:bb:ss.f` (hex digits, any case); the message says what is wrong.
    pub fn parse(text: &str) -> Result<PciAddress, String> {
        const FORM: &str = "expected dddd:bb:ss.f in hex, e.g. 0000:3b:02.1";
        let hex = |part: &str, digits: usize, what: &str| -> Result<u32, String> {
            if part.len() != digits || !part.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "the {what} `{part}` is not {digits} hex digits ({FORM})"
                ));
            }
            u32::from_str_radix(part, 16).map_err(|e| format!("the {what} `{part}`: {e}"))
        };
        let mut parts = text.split(':');
        let (Some(domain), Some(bus), Some(rest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(FORM.to_string());
        };
        let Some((slot, function)) = rest.split_once('.') else {
            return Err(format!("no `.` before the function ({FORM})"));
        };
        let domain = hex(domain, 4, "domain")?;
        let bus = hex(bus, 2, "bus")?;
        let slot = hex(slot, 2, "slot")?;
        if slot > 0x1f {
            return Err(format!(
                "the slot 0x{slot:02x} is above 0x1f, the highest PCI device number"
            ));
        }
        if function.len() != 1 || !matches!(function.as_bytes()[0], b'0'..=b'7') {
            return Err(format!(
                "the function `{function}` is not a digit from 0 to 7"
            ));
        }
        Ok(PciAddress {
            domain: domain as u16,
            bus: bus as u8,
            slot: slot as u8,
            function: function.as_bytes()[0] - b'0',
        })
    }

    /// The `<address type='pci' …/>` element libvirt uses for this address in a `<source>`.
    pub fn libvirt_element(&self) -> String {
        format!(
            "<address type='pci' domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// The canonical form, lower-case hex: what inventory reports for hostdev sources.
impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_canonical_form() {
        let a = PciAddress::parse("0000:3B:02.1").unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0x3b,
                slot: 2,
                function: 1
            }
        );
        assert_eq!(a.to_string(), "0000:3b:02.1");
        assert_eq!(
            a.libvirt_element(),
            "<address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>"
        );
        assert_eq!(
            PciAddress::parse("ffff:ff:1f.7").unwrap().to_string(),
            "ffff:ff:1f.7"
        );
    }

    #[test]
    fn rejects_what_is_not_an_address_and_says_why() {
        let cases = [
            ("3b:02.1", "expected dddd:bb:ss.f"),
            ("0000:3b:02:1", "expected dddd:bb:ss.f"),
            ("0000:3b:021", "no `.` before the function"),
            ("000:3b:02.1", "the domain `000` is not 4 hex digits"),
            ("0000:3g:02.1", "the bus `3g` is not 2 hex digits"),
            ("0000:3b:20.1", "above 0x1f"),
            (
                "0000:3b:02.8",
                "the function `8` is not a digit from 0 to 7",
            ),
            ("0000:3b:02.", "the function `` is not a digit"),
            ("", "expected dddd:bb:ss.f"),
        ];
        for (text, why) in cases {
            let err = PciAddress::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
