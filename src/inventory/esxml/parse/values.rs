//! Leaf values: sizes, vCPU counts, image versions and VLAN ids, each checked and named in
//! errors by the element that owns it. Separate because every kind of element uses them and
//! none owns them.

use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind};
use crate::inventory::esxml::scan::TextField;
use crate::inventory::version::ImageVersion;
use crate::size::parse_size_mib;

use super::Resolver;

/// The element a value belongs to, named only when an error needs it (formatting a name for
/// each of 300,000 elements up front would cost more than parsing them).
#[derive(Clone, Copy)]
pub(super) struct Owner<'s> {
    pub(super) element: &'static str,
    pub(super) id: &'s str,
}

impl Owner<'_> {
    pub(super) fn describe(self) -> String {
        format!("<{} id=\"{}\">", self.element, self.id)
    }
}

/// What reading one optional leaf value gives: `None` when its element is absent or empty.
type Read<T> = Result<Option<T>, EsXmlError>;

/// `read` of the field, or `None` when its element is absent or empty.
fn non_empty<T>(field: &Option<TextField>, read: impl FnOnce(&TextField) -> Read<T>) -> Read<T> {
    TextField::non_empty(field).map_or(Ok(None), read)
}

impl Resolver<'_> {
    /// A size above zero, or `None` when the element is absent or empty.
    pub(super) fn size(
        &self,
        field: &Option<TextField>,
        name: &'static str,
        owner: Owner<'_>,
    ) -> Read<u64> {
        non_empty(field, |f| match parse_size_mib(&f.value) {
            Ok(0) => Err(self.bad_value(f, name, owner, "a size above zero")),
            Ok(mib) => Ok(Some(mib)),
            Err(source) => Err(self.error(
                f.offset,
                owner.describe(),
                EsXmlErrorKind::BadSize {
                    field: name,
                    source,
                },
            )),
        })
    }

    pub(super) fn vcpus(&self, field: &Option<TextField>, owner: Owner<'_>) -> Read<u32> {
        non_empty(field, |f| match f.value.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(self.bad_value(
                f,
                "guestCores",
                owner,
                "a whole number of vCPUs (1 or more)",
            )),
        })
    }

    /// `default` (OEDA's "whatever image the installer ships") and empty mean "not known".
    pub(super) fn image_version(
        &self,
        field: &Option<TextField>,
        owner: Owner<'_>,
    ) -> Read<ImageVersion> {
        non_empty(field, |f| {
            if f.value.eq_ignore_ascii_case("default") {
                return Ok(None);
            }
            f.value.parse().map(Some).map_err(|_| {
                self.bad_value(
                    f,
                    "ImageVersion",
                    owner,
                    "an image version (dotted numbers such as 25.1.4.0.0.250614) or `default`",
                )
            })
        })
    }

    /// VLAN 0 is 802.1Q's "no VLAN" (OEDA writes it on untagged admin networks), so it is `None`.
    pub(super) fn vlan(&self, field: &Option<TextField>, owner: Owner<'_>) -> Read<u32> {
        non_empty(field, |f| match f.value.parse::<u32>() {
            Ok(0) => Ok(None),
            Ok(v) if v <= 4094 => Ok(Some(v)),
            _ => Err(self.bad_value(f, "vlanId", owner, "a VLAN id (0 to 4094)")),
        })
    }

    fn bad_value(
        &self,
        f: &TextField,
        field: &'static str,
        owner: Owner<'_>,
        expected: &'static str,
    ) -> EsXmlError {
        self.error(
            f.offset,
            owner.describe(),
            EsXmlErrorKind::BadValue {
                field,
                text: f.value.to_string(),
                expected,
            },
        )
    }
}

pub(super) fn text(field: &Option<TextField>) -> Option<String> {
    TextField::non_empty(field).map(|f| f.value.to_string())
}
