//! render: owned by its work item.
