//! Reading a raw HTTP/1.1 answer as text: its status code, a field's values, its body.

/// The status code of `resp` (`""` when it is too short to have one).
pub fn status(resp: &str) -> &str {
    resp.get(9..12).unwrap_or("")
}

/// The values of every field `name` (any case) in the head of `head`.
pub fn field<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    let head = &head[..head.find("\r\n\r\n").unwrap_or(head.len())];
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// What follows the head of `resp`.
pub fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
