//! Which libvirt domain is an es.xml guest: `inventory { domain_name = … }`.
//!
//! berth names guests by their es.xml `<hostName>` everywhere (HCL, plans, state). libvirt may
//! name the guest's domain otherwise: ExaCS files give a guest its client host name while the
//! machine id (and, on some racks, the domain) carries the NAT admin name. The naming maps one
//! to the other: `host_name` (the default), `short_name` (its first DNS label), `machine_id`
//! (the es.xml `machine@id` without its `_id` suffix), or a template over `{host_name}`,
//! `{short_name}` and `{machine_id}`.

use std::borrow::Cow;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 3] = ["{host_name}", "{short_name}", "{machine_id}"];

/// How an es.xml guest's libvirt domain is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainNaming {
    template: String,
}

impl Default for DomainNaming {
    fn default() -> Self {
        DomainNaming {
            template: "{host_name}".into(),
        }
    }
}

impl DomainNaming {
    /// `host_name`, `short_name`, `machine_id`, or a template with at least one placeholder
    /// and no other `{…}`. `Err` says what is wrong.
    pub fn parse(value: &str) -> Result<DomainNaming, String> {
        let template = match value {
            "host_name" | "short_name" | "machine_id" => format!("{{{value}}}"),
            other => other.to_string(),
        };
        let mut rest = template.as_str();
        let mut placeholders = 0;
        while let Some(open) = rest.find('{') {
            let after = &rest[open..];
            let Some(close) = after.find('}') else {
                return Err(format!("`{value}` has a `{{` without its `}}`"));
            };
            let placeholder = &after[..=close];
            if !PLACEHOLDERS.contains(&placeholder) {
                return Err(format!(
                    "`{placeholder}` is not a placeholder; use {}",
                    PLACEHOLDERS.join(", ")
                ));
            }
            placeholders += 1;
            rest = &after[close + 1..];
        }
        if rest.contains('}') || placeholders == 0 {
            return Err(format!(
                "`{value}` is neither host_name, short_name nor machine_id, nor a template using {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        Ok(DomainNaming { template })
    }

    /// Whether every guest's domain is named by its es.xml host name.
    pub fn is_host_name(&self) -> bool {
        self.template == "{host_name}"
    }

    /// The domain name of the guest with es.xml `<hostName>` `host_name` and `machine@id`
    /// `machine_id`.
    pub fn domain(&self, host_name: &str, machine_id: &str) -> String {
        self.domain_borrowed(host_name, machine_id).into_owned()
    }

    /// [`DomainNaming::domain`], borrowing `host_name` when the domain is named as the guest
    /// (the default): reconcile asks once per guest, a million times at 100,000 hosts.
    pub fn domain_borrowed<'n>(&self, host_name: &'n str, machine_id: &str) -> Cow<'n, str> {
        if self.is_host_name() {
            return Cow::Borrowed(host_name);
        }
        let short = host_name.split('.').next().unwrap_or(host_name);
        let id = machine_id.strip_suffix("_id").unwrap_or(machine_id);
        self.template
            .replace("{host_name}", host_name)
            .replace("{short_name}", short)
            .replace("{machine_id}", id)
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "iad103716x8mcompexpn15c.clientsubnet.devx8melastic.oraclevcn.com";
    const ID: &str = "iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com_id";

    #[test]
    fn each_form_names_the_domain() {
        let name = |v: &str| DomainNaming::parse(v).unwrap().domain(HOST, ID);
        assert_eq!(DomainNaming::default().domain(HOST, ID), HOST);
        assert_eq!(name("host_name"), HOST);
        assert_eq!(name("short_name"), "iad103716x8mcompexpn15c");
        assert_eq!(
            name("machine_id"),
            "iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com"
        );
        assert_eq!(name("{short_name}-kvm"), "iad103716x8mcompexpn15c-kvm");
        // An id without the suffix is taken whole.
        assert_eq!(
            DomainNaming::parse("machine_id")
                .unwrap()
                .domain("vm1", "vm1-machine"),
            "vm1-machine"
        );
    }

    #[test]
    fn a_bad_template_says_why() {
        assert!(
            DomainNaming::parse("hostname")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            DomainNaming::parse("{host}")
                .unwrap_err()
                .contains("`{host}` is not a placeholder")
        );
        assert!(
            DomainNaming::parse("{short_name")
                .unwrap_err()
                .contains("without")
        );
        assert!(DomainNaming::parse("vm}").is_err());
    }
}
