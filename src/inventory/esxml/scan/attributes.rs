//! Reading attributes (`id`, `oedaversion`) of start tags, borrowed from the input when
//! possible. Separate because attribute values have their own normalization and errors.

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;

use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind, machine_element};

use super::scanner::Scanner;

impl<'a> Scanner<'a> {
    pub(super) fn attribute(
        &self,
        e: &BytesStart<'_>,
        start: usize,
        name: &str,
    ) -> Result<Option<Cow<'a, str>>, EsXmlError> {
        let element = || format!("<{}>", e.local_name().as_ref());
        let attr = e.try_get_attribute(name).map_err(|err| {
            self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string()))
        })?;
        match attr {
            None => Ok(None),
            Some(a) => a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| Some(self.in_text(v)))
                .map_err(|err| {
                    self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string()))
                }),
        }
    }

    /// `value` as a borrow of the input when it is one (attribute values without entity
    /// references are): ids then cost no allocation until the resolver keeps them, and most
    /// (references to networks, clusters, volumes) it only looks up.
    fn in_text(&self, value: Cow<'_, str>) -> Cow<'a, str> {
        if let Cow::Borrowed(v) = &value {
            let start = (v.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
            let in_text = start
                .checked_add(v.len())
                .and_then(|end| self.text.get(start..end))
                .filter(|slice| std::ptr::eq(slice.as_ptr(), v.as_ptr()));
            if let Some(slice) = in_text {
                return Cow::Borrowed(slice);
            }
        }
        Cow::Owned(value.into_owned())
    }

    pub(super) fn required_id(
        &self,
        e: &BytesStart<'_>,
        start: usize,
        element: &str,
    ) -> Result<Cow<'a, str>, EsXmlError> {
        match self.attribute(e, start, "id")? {
            Some(id) if !id.trim().is_empty() => Ok(id),
            _ => Err(self.error_at(
                start,
                self.describe_open(element),
                EsXmlErrorKind::MissingAttribute("id"),
            )),
        }
    }

    /// `<machine>` or, inside a machine, `<machine id="…"> <network>`.
    fn describe_open(&self, element: &str) -> String {
        match &self.machine {
            Some(m) => format!("{} <{element}>", machine_element(&m.id)),
            None => format!("<{element}>"),
        }
    }
}
