//! Reads hosts through libvirt (the `virt` crate). Owned by the libvirt/reconcile work.
