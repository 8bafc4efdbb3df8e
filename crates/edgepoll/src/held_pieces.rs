//! Body pieces held until they can go on (a streamed response behind
//! another on its connection, a request body whose exchange waits for a
//! connection), with their total kept as they come.
//!
//! The total is asked at every piece and every check of a backlog: summed
//! over the list each time, it would cost the square of the pieces a
//! dripping peer piles up (up to `body_backlog` of one-byte reads: 65 536
//! pieces took 0.71 s natively, 200 000 some 12 s).

use bytes::Bytes;

/// Pieces in order and their total length.
#[derive(Debug, Default)]
pub(crate) struct HeldPieces {
    pieces: Vec<Bytes>,
    len: usize,
}

impl HeldPieces {
    pub(crate) fn push(&mut self, piece: Bytes) {
        self.len = self.len.saturating_add(piece.len());
        self.pieces.push(piece);
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The pieces, in the order they came; none are held after.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        self.len = 0;
        std::mem::take(&mut self.pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_follows_the_pieces_and_a_take_empties_them() {
        let mut held = HeldPieces::default();
        for piece in ["ab", "", "cde"] {
            held.push(Bytes::from(piece));
        }
        assert_eq!(held.len(), 5);
        assert_eq!(held.take(), ["ab", "", "cde"].map(Bytes::from));
        assert_eq!(held.len(), 0);
        assert!(held.take().is_empty());
    }
}
