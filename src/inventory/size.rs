//! Memory sizes as es.xml and HCL write them (`64GB`, `1390Gb`, `2048G`, `512M`, `16GiB`).
//! Owned by the es.xml parser work: see `parse_size_mib`.
