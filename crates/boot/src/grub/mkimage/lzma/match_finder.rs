//! The binary-tree match finder with 2-, 3- and 4-byte hashes ("bt4") of the LZMA SDK 4.58
//! (`LzFind.c`), in the configuration GRUB's `LzmaEnc` uses it: the whole input in memory,
//! one thread.
//!
//! The SDK reads its input through a sliding buffer; GRUB's encoder always keeps at least
//! `keepSizeAfter` (= `numFastBytes + 273` = 305) bytes ahead of the current position until
//! the input ends, and every use of "available bytes" is capped below that (273 or
//! `2 * numFastBytes + 1`), so reading the whole input at once finds the same matches.
//! Positions are the SDK's: the first byte is at `cyclic_size` so that an empty hash slot (0)
//! is never within the dictionary.

/// `kHash2Size`, `kHash3Size`: the 2- and 3-byte hash heads in front of the 4-byte one.
const HASH2_SIZE: usize = 1 << 10;
const HASH3_SIZE: usize = 1 << 16;
const FIX3: usize = HASH2_SIZE;
const FIX4: usize = HASH2_SIZE + HASH3_SIZE;
/// `kEmptyHashValue`.
const EMPTY: u32 = 0;

pub(super) struct MatchFinder<'a> {
    data: &'a [u8],
    /// Index in `data` of the current byte (the SDK's `buffer`).
    cur: usize,
    /// The SDK's `pos`: `cur + cyclic_size`.
    pos: u32,
    cyclic_pos: u32,
    cyclic_size: u32,
    hash_mask: u32,
    /// The three hash heads: 2-byte, 3-byte, 4-byte (`hash`).
    hash: Vec<u32>,
    /// Two children per dictionary position (`son`).
    son: Vec<u32>,
    cut_value: u32,
    match_max_len: u32,
    crc: [u32; 256],
}

impl<'a> MatchFinder<'a> {
    /// `MatchFinder_Create` + `MatchFinder_Init` for a bt4 finder over `data`, whose length
    /// the caller keeps below 2³¹ (positions are 32-bit and never normalized).
    pub(super) fn new(data: &'a [u8], dict_size: u32, match_max_len: u32, cut_value: u32) -> Self {
        let cyclic_size = dict_size + 1;
        let mut hs = dict_size - 1;
        hs |= hs >> 1;
        hs |= hs >> 2;
        hs |= hs >> 4;
        hs |= hs >> 8;
        hs >>= 1;
        hs |= 0xFFFF;
        if hs > 1 << 24 {
            hs >>= 1;
        }
        let mut crc = [0u32; 256];
        for (i, c) in crc.iter_mut().enumerate() {
            let mut r = i as u32;
            for _ in 0..8 {
                r = (r >> 1) ^ (0xEDB8_8320 & (r & 1).wrapping_neg());
            }
            *c = r;
        }
        Self {
            data,
            cur: 0,
            pos: cyclic_size,
            cyclic_pos: 0,
            cyclic_size,
            hash_mask: hs,
            hash: vec![EMPTY; FIX4 + hs as usize + 1],
            son: vec![EMPTY; 2 * cyclic_size as usize],
            cut_value,
            match_max_len,
            crc,
        }
    }

    pub(super) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Index in the input of the byte the next `get_matches`/`skip` looks at.
    pub(super) fn cur(&self) -> usize {
        self.cur
    }

    /// `GetNumAvailableBytes`.
    pub(super) fn available(&self) -> u32 {
        (self.data.len() - self.cur) as u32
    }

    /// The SDK's `lenLimit` (see the module comment for why it is this simple here).
    fn len_limit(&self) -> u32 {
        self.available().min(self.match_max_len)
    }

    fn move_pos(&mut self) {
        self.cyclic_pos += 1;
        if self.cyclic_pos == self.cyclic_size {
            self.cyclic_pos = 0;
        }
        self.cur += 1;
        self.pos += 1;
    }

    /// `HASH4_CALC`: the 2-, 3- and 4-byte hashes of the bytes at `cur`.
    fn hashes(&self) -> (usize, usize, usize) {
        let d = &self.data[self.cur..self.cur + 4];
        let temp = self.crc[usize::from(d[0])] ^ u32::from(d[1]);
        let h2 = temp as usize & (HASH2_SIZE - 1);
        let t3 = temp ^ (u32::from(d[2]) << 8);
        let h3 = t3 as usize & (HASH3_SIZE - 1);
        let h4 = ((t3 ^ (self.crc[usize::from(d[3])] << 5)) & self.hash_mask) as usize;
        (h2, h3, h4)
    }

    /// The son pair of the position `delta` back from the current one.
    fn pair(&self, delta: u32) -> usize {
        let wrap = if delta > self.cyclic_pos {
            self.cyclic_size
        } else {
            0
        };
        ((self.cyclic_pos + wrap - delta) as usize) << 1
    }

    /// `Bt4_MatchFinder_GetMatches`: `(length, distance − 1)` pairs of increasing length into
    /// `d`; returns the number of values written (twice the pairs).
    pub(super) fn get_matches(&mut self, d: &mut [u32]) -> usize {
        let len_limit = self.len_limit();
        if len_limit < 4 {
            self.move_pos();
            return 0;
        }
        let (h2, h3, h4) = self.hashes();
        let mut delta2 = self.pos.wrapping_sub(self.hash[h2]);
        let delta3 = self.pos.wrapping_sub(self.hash[FIX3 + h3]);
        let cur_match = self.hash[FIX4 + h4];
        self.hash[h2] = self.pos;
        self.hash[FIX3 + h3] = self.pos;
        self.hash[FIX4 + h4] = self.pos;
        let data = self.data;
        let cur = self.cur;
        let mut max_len = 1u32;
        let mut offset = 0usize;
        if delta2 < self.cyclic_size && data[cur - delta2 as usize] == data[cur] {
            max_len = 2;
            d[0] = 2;
            d[1] = delta2 - 1;
            offset = 2;
        }
        if delta2 != delta3 && delta3 < self.cyclic_size && data[cur - delta3 as usize] == data[cur]
        {
            max_len = 3;
            d[offset + 1] = delta3 - 1;
            offset += 2;
            delta2 = delta3;
        }
        if offset != 0 {
            while max_len != len_limit
                && data[cur + max_len as usize - delta2 as usize] == data[cur + max_len as usize]
            {
                max_len += 1;
            }
            d[offset - 2] = max_len;
            if max_len == len_limit {
                self.skip_matches_spec(len_limit, cur_match);
                self.move_pos();
                return offset;
            }
        }
        if max_len < 3 {
            max_len = 3;
        }
        let offset = self.get_matches_spec(len_limit, cur_match, d, offset, max_len);
        self.move_pos();
        offset
    }

    /// `GetMatchesSpec1`: walks and re-roots the binary tree at the current position.
    fn get_matches_spec(
        &mut self,
        len_limit: u32,
        mut cur_match: u32,
        d: &mut [u32],
        mut offset: usize,
        mut max_len: u32,
    ) -> usize {
        let data = self.data;
        let cur = self.cur;
        let mut ptr0 = ((self.cyclic_pos as usize) << 1) + 1;
        let mut ptr1 = (self.cyclic_pos as usize) << 1;
        let (mut len0, mut len1) = (0u32, 0u32);
        let mut cut = self.cut_value;
        loop {
            let delta = self.pos.wrapping_sub(cur_match);
            if cut == 0 || delta >= self.cyclic_size {
                self.son[ptr0] = EMPTY;
                self.son[ptr1] = EMPTY;
                return offset;
            }
            cut -= 1;
            let pair = self.pair(delta);
            let pb = cur - delta as usize;
            let mut len = len0.min(len1);
            if data[pb + len as usize] == data[cur + len as usize] {
                len += 1;
                while len != len_limit && data[pb + len as usize] == data[cur + len as usize] {
                    len += 1;
                }
                if max_len < len {
                    max_len = len;
                    d[offset] = len;
                    d[offset + 1] = delta - 1;
                    offset += 2;
                    if len == len_limit {
                        self.son[ptr1] = self.son[pair];
                        self.son[ptr0] = self.son[pair + 1];
                        return offset;
                    }
                }
            }
            if data[pb + len as usize] < data[cur + len as usize] {
                self.son[ptr1] = cur_match;
                ptr1 = pair + 1;
                cur_match = self.son[ptr1];
                len1 = len;
            } else {
                self.son[ptr0] = cur_match;
                ptr0 = pair;
                cur_match = self.son[ptr0];
                len0 = len;
            }
        }
    }

    /// `SkipMatchesSpec`: the tree update of [`Self::get_matches_spec`] without the output.
    fn skip_matches_spec(&mut self, len_limit: u32, mut cur_match: u32) {
        let data = self.data;
        let cur = self.cur;
        let mut ptr0 = ((self.cyclic_pos as usize) << 1) + 1;
        let mut ptr1 = (self.cyclic_pos as usize) << 1;
        let (mut len0, mut len1) = (0u32, 0u32);
        let mut cut = self.cut_value;
        loop {
            let delta = self.pos.wrapping_sub(cur_match);
            if cut == 0 || delta >= self.cyclic_size {
                self.son[ptr0] = EMPTY;
                self.son[ptr1] = EMPTY;
                return;
            }
            cut -= 1;
            let pair = self.pair(delta);
            let pb = cur - delta as usize;
            let mut len = len0.min(len1);
            if data[pb + len as usize] == data[cur + len as usize] {
                len += 1;
                while len != len_limit && data[pb + len as usize] == data[cur + len as usize] {
                    len += 1;
                }
                if len == len_limit {
                    self.son[ptr1] = self.son[pair];
                    self.son[ptr0] = self.son[pair + 1];
                    return;
                }
            }
            if data[pb + len as usize] < data[cur + len as usize] {
                self.son[ptr1] = cur_match;
                ptr1 = pair + 1;
                cur_match = self.son[ptr1];
                len1 = len;
            } else {
                self.son[ptr0] = cur_match;
                ptr0 = pair;
                cur_match = self.son[ptr0];
                len0 = len;
            }
        }
    }

    /// `Bt4_MatchFinder_Skip`: inserts `num` positions without reporting matches.
    pub(super) fn skip(&mut self, num: u32) {
        for _ in 0..num {
            let len_limit = self.len_limit();
            if len_limit < 4 {
                self.move_pos();
                continue;
            }
            let (h2, h3, h4) = self.hashes();
            let cur_match = self.hash[FIX4 + h4];
            self.hash[h2] = self.pos;
            self.hash[FIX3 + h3] = self.pos;
            self.hash[FIX4 + h4] = self.pos;
            self.skip_matches_spec(len_limit, cur_match);
            self.move_pos();
        }
    }
}
