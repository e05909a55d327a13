//! Diagnostics as a caller sees them: the compiler's colours removed for callers who want
//! none (what else the compiler emits, such as links, stays).

/// Removes the colour sequences (ANSI CSI: `ESC [ ... m`, `ESC [K`) from diagnostics, and
/// only those: links (OSC 8), which the compiler emits by other rules than colours, stay.
pub fn strip_colours(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b && text.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < text.len() && !(0x40..=0x7e).contains(&text[j]) {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_stripped() {
        let coloured =
            b"\x1b[01m\x1b[Ka.c:1:\x1b[m\x1b[K \x1b]8;;https://x\x1b\\-Wall\x1b]8;;\x1b\\ w\n";
        assert_eq!(
            strip_colours(coloured),
            b"a.c:1: \x1b]8;;https://x\x1b\\-Wall\x1b]8;;\x1b\\ w\n"
        );
        assert_eq!(strip_colours(b"\x1b[0;1;31merror\x1b[0m\n"), b"error\n");
        assert_eq!(strip_colours(b"plain\n"), b"plain\n");
    }
}
