//! The LZMA encoder of the LZMA SDK 4.58 as GRUB bundles it (`grub-core/lib/LzmaEnc.c`), in
//! the one configuration `grub-mkimage` uses (`compress_kernel_lzma`: `LzmaEncProps_Init`,
//! then dictionary 64 KiB, lc 3, lp 0, pb 2, one thread; normalized to level 5: the normal
//! (optimum) parser, 32 fast bytes, bt4 with 32 cycles; no end marker).
//!
//! Written in Rust from the SDK's algorithm, step for step, because the output must be the
//! same bytes: every price, table refresh and tie-break below is the SDK's. Names follow the
//! SDK's so the two can be read side by side.

use super::match_finder::MatchFinder;
use super::{DICT_SIZE, LC, LP, PB};

const NUM_REPS: usize = 4;
const NUM_STATES: usize = 12;
const MATCH_LEN_MIN: u32 = 2;
const MATCH_LEN_MAX: u32 = 273;
const NUM_OPTS: u32 = 1 << 12;
const INFINITY_PRICE: u32 = 1 << 30;

const NUM_BIT_MODEL_TOTAL_BITS: u32 = 11;
const BIT_MODEL_TOTAL: u32 = 1 << NUM_BIT_MODEL_TOTAL_BITS;
const NUM_MOVE_BITS: u32 = 5;
const PROB_INIT: u16 = (BIT_MODEL_TOTAL >> 1) as u16;
const NUM_MOVE_REDUCING_BITS: u32 = 4;
const NUM_BIT_PRICE_SHIFT_BITS: u32 = 4;
const TOP_VALUE: u32 = 1 << 24;

const NUM_LEN_TO_POS_STATES: usize = 4;
const NUM_POS_SLOT_BITS: u32 = 6;
const NUM_ALIGN_BITS: u32 = 4;
const ALIGN_TABLE_SIZE: usize = 1 << NUM_ALIGN_BITS;
const ALIGN_MASK: u32 = ALIGN_TABLE_SIZE as u32 - 1;
const START_POS_MODEL_INDEX: u32 = 4;
const END_POS_MODEL_INDEX: u32 = 14;
const NUM_FULL_DISTANCES: u32 = 1 << (END_POS_MODEL_INDEX / 2);
const DIST_TABLE_SIZE_MAX: usize = 64;

const PB_STATES_MAX: usize = 16;
const LEN_LOW_BITS: u32 = 3;
const LEN_LOW_SYMBOLS: u32 = 1 << LEN_LOW_BITS;
const LEN_MID_BITS: u32 = 3;
const LEN_MID_SYMBOLS: u32 = 1 << LEN_MID_BITS;
const LEN_HIGH_BITS: u32 = 8;
const LEN_SYMBOLS_TOTAL: usize =
    (LEN_LOW_SYMBOLS + LEN_MID_SYMBOLS + (1 << LEN_HIGH_BITS)) as usize;

const LITERAL_NEXT: [u32; NUM_STATES] = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 4, 5];
const MATCH_NEXT: [u32; NUM_STATES] = [7, 7, 7, 7, 7, 7, 7, 10, 10, 10, 10, 10];
const REP_NEXT: [u32; NUM_STATES] = [8, 8, 8, 8, 8, 8, 8, 11, 11, 11, 11, 11];
const SHORT_REP_NEXT: [u32; NUM_STATES] = [9, 9, 9, 9, 9, 9, 9, 11, 11, 11, 11, 11];

// GRUB's settings (`LzmaEncProps_Normalize` at level 5 with GRUB's overrides): lc, lp, pb
// and the dictionary from the parent module, and:
const NUM_FAST_BYTES: u32 = 32;
/// `mc`: `(16 + (fb >> 1)) >> (btMode ? 0 : 1)` with the binary-tree finder.
const MATCH_FINDER_CYCLES: u32 = 16 + (NUM_FAST_BYTES >> 1);

fn is_char_state(s: u32) -> bool {
    s < 7
}

fn len_to_pos_state(len: u32) -> usize {
    if len < NUM_LEN_TO_POS_STATES as u32 + 1 {
        (len - 2) as usize
    } else {
        NUM_LEN_TO_POS_STATES - 1
    }
}

/// `GetPosSlot` (the SDK's `g_FastPos` table computes the same function).
fn pos_slot(pos: u32) -> u32 {
    if pos < 2 {
        return pos;
    }
    let top = 31 - pos.leading_zeros();
    2 * top + ((pos >> (top - 1)) & 1)
}

struct RangeEnc {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl RangeEnc {
    fn new(capacity: usize) -> Self {
        Self {
            low: 0,
            range: 0xFFFF_FFFF,
            cache: 0,
            cache_size: 1,
            out: Vec::with_capacity(capacity),
        }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add((self.low >> 32) as u8));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low as u32) >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = u64::from((self.low as u32) << 8);
    }

    fn flush(&mut self) {
        for _ in 0..5 {
            self.shift_low();
        }
    }

    fn encode_direct_bits(&mut self, value: u32, mut num_bits: u32) {
        while num_bits != 0 {
            num_bits -= 1;
            self.range >>= 1;
            self.low += u64::from(self.range & ((value >> num_bits) & 1).wrapping_neg());
            if self.range < TOP_VALUE {
                self.range <<= 8;
                self.shift_low();
            }
        }
    }

    fn encode_bit(&mut self, prob: &mut u16, bit: u32) {
        let mut ttt = u32::from(*prob);
        let new_bound = (self.range >> NUM_BIT_MODEL_TOTAL_BITS) * ttt;
        if bit == 0 {
            self.range = new_bound;
            ttt += (BIT_MODEL_TOTAL - ttt) >> NUM_MOVE_BITS;
        } else {
            self.low += u64::from(new_bound);
            self.range -= new_bound;
            ttt -= ttt >> NUM_MOVE_BITS;
        }
        *prob = ttt as u16;
        if self.range < TOP_VALUE {
            self.range <<= 8;
            self.shift_low();
        }
    }

    fn lit_encode(&mut self, probs: &mut [u16], symbol: u32) {
        let mut symbol = symbol | 0x100;
        loop {
            self.encode_bit(&mut probs[(symbol >> 8) as usize], (symbol >> 7) & 1);
            symbol <<= 1;
            if symbol >= 0x10000 {
                break;
            }
        }
    }

    fn lit_encode_matched(&mut self, probs: &mut [u16], symbol: u32, mut match_byte: u32) {
        let mut offs = 0x100u32;
        let mut symbol = symbol | 0x100;
        loop {
            match_byte <<= 1;
            self.encode_bit(
                &mut probs[(offs + (match_byte & offs) + (symbol >> 8)) as usize],
                (symbol >> 7) & 1,
            );
            symbol <<= 1;
            offs &= !(match_byte ^ symbol);
            if symbol >= 0x10000 {
                break;
            }
        }
    }

    /// `RcTree_Encode`: `probs[1..]` is the tree.
    fn tree_encode(&mut self, probs: &mut [u16], num_bits: u32, symbol: u32) {
        let mut m = 1usize;
        for i in (0..num_bits).rev() {
            let bit = (symbol >> i) & 1;
            self.encode_bit(&mut probs[m], bit);
            m = (m << 1) | bit as usize;
        }
    }

    /// `RcTree_ReverseEncode`.
    fn tree_reverse_encode(&mut self, probs: &mut [u16], num_bits: u32, mut symbol: u32) {
        let mut m = 1usize;
        for _ in 0..num_bits {
            let bit = symbol & 1;
            self.encode_bit(&mut probs[m], bit);
            m = (m << 1) | bit as usize;
            symbol >>= 1;
        }
    }
}

/// `ProbPrices`: the price (in 1/16 bit) of a bit by its probability.
struct Prices([u32; (BIT_MODEL_TOTAL >> NUM_MOVE_REDUCING_BITS) as usize]);

impl Prices {
    /// `LzmaEnc_InitPriceTables`.
    fn new() -> Self {
        let mut t = [0u32; (BIT_MODEL_TOTAL >> NUM_MOVE_REDUCING_BITS) as usize];
        let mut i = (1u32 << NUM_MOVE_REDUCING_BITS) / 2;
        while i < BIT_MODEL_TOTAL {
            let mut w = i;
            let mut bit_count = 0u32;
            for _ in 0..NUM_BIT_PRICE_SHIFT_BITS {
                w *= w;
                bit_count <<= 1;
                while w >= 1 << 16 {
                    w >>= 1;
                    bit_count += 1;
                }
            }
            t[(i >> NUM_MOVE_REDUCING_BITS) as usize] =
                (NUM_BIT_MODEL_TOTAL_BITS << NUM_BIT_PRICE_SHIFT_BITS) - 15 - bit_count;
            i += 1 << NUM_MOVE_REDUCING_BITS;
        }
        Self(t)
    }

    /// `GET_PRICE`.
    fn bit(&self, prob: u16, bit: u32) -> u32 {
        self.0[((u32::from(prob) ^ (bit.wrapping_neg() & (BIT_MODEL_TOTAL - 1)))
            >> NUM_MOVE_REDUCING_BITS) as usize]
    }

    fn p0(&self, prob: u16) -> u32 {
        self.0[(u32::from(prob) >> NUM_MOVE_REDUCING_BITS) as usize]
    }

    fn p1(&self, prob: u16) -> u32 {
        self.0[((u32::from(prob) ^ (BIT_MODEL_TOTAL - 1)) >> NUM_MOVE_REDUCING_BITS) as usize]
    }

    fn literal(&self, probs: &[u16], symbol: u32) -> u32 {
        let mut price = 0;
        let mut symbol = symbol | 0x100;
        loop {
            price += self.bit(probs[(symbol >> 8) as usize], (symbol >> 7) & 1);
            symbol <<= 1;
            if symbol >= 0x10000 {
                return price;
            }
        }
    }

    fn literal_matched(&self, probs: &[u16], symbol: u32, mut match_byte: u32) -> u32 {
        let mut price = 0;
        let mut offs = 0x100u32;
        let mut symbol = symbol | 0x100;
        loop {
            match_byte <<= 1;
            price += self.bit(
                probs[(offs + (match_byte & offs) + (symbol >> 8)) as usize],
                (symbol >> 7) & 1,
            );
            symbol <<= 1;
            offs &= !(match_byte ^ symbol);
            if symbol >= 0x10000 {
                return price;
            }
        }
    }

    /// `RcTree_GetPrice`.
    fn tree(&self, probs: &[u16], num_bits: u32, symbol: u32) -> u32 {
        let mut price = 0;
        let mut symbol = symbol | (1 << num_bits);
        while symbol != 1 {
            price += self.bit(probs[(symbol >> 1) as usize], symbol & 1);
            symbol >>= 1;
        }
        price
    }

    /// `RcTree_ReverseGetPrice`.
    fn tree_reverse(&self, probs: &[u16], num_bits: u32, mut symbol: u32) -> u32 {
        let mut price = 0;
        let mut m = 1usize;
        for _ in 0..num_bits {
            let bit = symbol & 1;
            symbol >>= 1;
            price += self.bit(probs[m], bit);
            m = (m << 1) | bit as usize;
        }
        price
    }
}

/// `CLenEnc` + `CLenPriceEnc`.
struct LenEnc {
    choice: u16,
    choice2: u16,
    low: [u16; PB_STATES_MAX << LEN_LOW_BITS],
    mid: [u16; PB_STATES_MAX << LEN_MID_BITS],
    high: [u16; 1 << LEN_HIGH_BITS],
    prices: Vec<[u32; LEN_SYMBOLS_TOTAL]>,
    table_size: u32,
    counters: [u32; PB_STATES_MAX],
}

impl LenEnc {
    fn new() -> Self {
        Self {
            choice: PROB_INIT,
            choice2: PROB_INIT,
            low: [PROB_INIT; PB_STATES_MAX << LEN_LOW_BITS],
            mid: [PROB_INIT; PB_STATES_MAX << LEN_MID_BITS],
            high: [PROB_INIT; 1 << LEN_HIGH_BITS],
            prices: vec![[0; LEN_SYMBOLS_TOTAL]; PB_STATES_MAX],
            table_size: 0,
            counters: [0; PB_STATES_MAX],
        }
    }

    fn low_tree(&mut self, pos_state: u32) -> &mut [u16] {
        &mut self.low[(pos_state << LEN_LOW_BITS) as usize..][..LEN_LOW_SYMBOLS as usize]
    }

    fn mid_tree(&mut self, pos_state: u32) -> &mut [u16] {
        &mut self.mid[(pos_state << LEN_MID_BITS) as usize..][..LEN_MID_SYMBOLS as usize]
    }

    /// `LenEnc_Encode2` (always with `updatePrice`: the normal parser).
    fn encode(&mut self, rc: &mut RangeEnc, symbol: u32, pos_state: u32, prices: &Prices) {
        if symbol < LEN_LOW_SYMBOLS {
            rc.encode_bit(&mut self.choice, 0);
            rc.tree_encode(self.low_tree(pos_state), LEN_LOW_BITS, symbol);
        } else {
            rc.encode_bit(&mut self.choice, 1);
            if symbol < LEN_LOW_SYMBOLS + LEN_MID_SYMBOLS {
                rc.encode_bit(&mut self.choice2, 0);
                rc.tree_encode(
                    self.mid_tree(pos_state),
                    LEN_MID_BITS,
                    symbol - LEN_LOW_SYMBOLS,
                );
            } else {
                rc.encode_bit(&mut self.choice2, 1);
                rc.tree_encode(
                    &mut self.high,
                    LEN_HIGH_BITS,
                    symbol - LEN_LOW_SYMBOLS - LEN_MID_SYMBOLS,
                );
            }
        }
        let ps = pos_state as usize;
        self.counters[ps] -= 1;
        if self.counters[ps] == 0 {
            self.update_table(pos_state, prices);
        }
    }

    /// `LenEnc_SetPrices` + `LenPriceEnc_UpdateTable`.
    fn update_table(&mut self, pos_state: u32, prices: &Prices) {
        let a0 = prices.p0(self.choice);
        let a1 = prices.p1(self.choice);
        let b0 = a1 + prices.p0(self.choice2);
        let b1 = a1 + prices.p1(self.choice2);
        let n = self.table_size;
        let low = &self.low[(pos_state << LEN_LOW_BITS) as usize..];
        let mid = &self.mid[(pos_state << LEN_MID_BITS) as usize..];
        let out = &mut self.prices[pos_state as usize];
        for i in 0..n {
            out[i as usize] = if i < LEN_LOW_SYMBOLS {
                a0 + prices.tree(low, LEN_LOW_BITS, i)
            } else if i < LEN_LOW_SYMBOLS + LEN_MID_SYMBOLS {
                b0 + prices.tree(mid, LEN_MID_BITS, i - LEN_LOW_SYMBOLS)
            } else {
                b1 + prices.tree(
                    &self.high,
                    LEN_HIGH_BITS,
                    i - LEN_LOW_SYMBOLS - LEN_MID_SYMBOLS,
                )
            };
        }
        self.counters[pos_state as usize] = n;
    }

    fn price(&self, pos_state: u32, len: u32) -> u32 {
        self.prices[pos_state as usize][(len - MATCH_LEN_MIN) as usize]
    }
}

/// `COptimal`.
#[derive(Clone, Copy, Default)]
struct Optimal {
    price: u32,
    state: u32,
    prev1_is_char: bool,
    prev2: bool,
    pos_prev2: u32,
    back_prev2: u32,
    pos_prev: u32,
    back_prev: u32,
    backs: [u32; NUM_REPS],
}

impl Optimal {
    fn make_as_char(&mut self) {
        self.back_prev = u32::MAX;
        self.prev1_is_char = false;
    }

    fn make_as_short_rep(&mut self) {
        self.back_prev = 0;
        self.prev1_is_char = false;
    }

    fn is_short_rep(&self) -> bool {
        self.back_prev == 0
    }
}

pub(super) struct Encoder<'a> {
    mf: MatchFinder<'a>,
    rc: RangeEnc,
    prices: Prices,

    optimum_end_index: u32,
    optimum_current_index: u32,
    longest_match_was_found: bool,
    longest_match_length: u32,
    num_distance_pairs: u32,
    opt: Vec<Optimal>,
    match_distances: [u32; MATCH_LEN_MAX as usize * 2 + 2 + 1],
    additional_offset: u32,
    reps: [u32; NUM_REPS],
    state: u32,

    pos_slot_prices: [[u32; DIST_TABLE_SIZE_MAX]; NUM_LEN_TO_POS_STATES],
    distances_prices: [[u32; NUM_FULL_DISTANCES as usize]; NUM_LEN_TO_POS_STATES],
    align_prices: [u32; ALIGN_TABLE_SIZE],
    align_price_count: u32,
    match_price_count: u32,
    dist_table_size: u32,

    lit_probs: Vec<u16>,
    is_match: [[u16; PB_STATES_MAX]; NUM_STATES],
    is_rep: [u16; NUM_STATES],
    is_rep_g0: [u16; NUM_STATES],
    is_rep_g1: [u16; NUM_STATES],
    is_rep_g2: [u16; NUM_STATES],
    is_rep0_long: [[u16; PB_STATES_MAX]; NUM_STATES],
    pos_slot_encoder: [[u16; 1 << NUM_POS_SLOT_BITS]; NUM_LEN_TO_POS_STATES],
    /// `posEncoders` with one unused slot in front, so that the SDK's
    /// `posEncoders + base - posSlot - 1` (which may point one before the array) is
    /// `&pos_encoders[base - posSlot..]` here.
    pos_encoders: [u16; 1 + (NUM_FULL_DISTANCES - END_POS_MODEL_INDEX) as usize],
    pos_align_encoder: [u16; ALIGN_TABLE_SIZE],
    len_enc: LenEnc,
    rep_len_enc: LenEnc,
}

impl<'a> Encoder<'a> {
    /// `LzmaEnc_SetProps` + `LzmaEnc_AllocAndInit` for GRUB's properties.
    pub(super) fn new(data: &'a [u8]) -> Self {
        let mut dist_log = 0u32;
        while dist_log < 31 && DICT_SIZE > 1 << dist_log {
            dist_log += 1;
        }
        let mut e = Self {
            mf: MatchFinder::new(data, DICT_SIZE, NUM_FAST_BYTES, MATCH_FINDER_CYCLES),
            rc: RangeEnc::new(data.len() / 2 + 16),
            prices: Prices::new(),
            optimum_end_index: 0,
            optimum_current_index: 0,
            longest_match_was_found: false,
            longest_match_length: 0,
            num_distance_pairs: 0,
            opt: vec![Optimal::default(); NUM_OPTS as usize],
            match_distances: [0; MATCH_LEN_MAX as usize * 2 + 2 + 1],
            additional_offset: 0,
            reps: [0; NUM_REPS],
            state: 0,
            pos_slot_prices: [[0; DIST_TABLE_SIZE_MAX]; NUM_LEN_TO_POS_STATES],
            distances_prices: [[0; NUM_FULL_DISTANCES as usize]; NUM_LEN_TO_POS_STATES],
            align_prices: [0; ALIGN_TABLE_SIZE],
            align_price_count: 0,
            match_price_count: 0,
            dist_table_size: dist_log * 2,
            lit_probs: vec![PROB_INIT; 0x300 << (LC + LP)],
            is_match: [[PROB_INIT; PB_STATES_MAX]; NUM_STATES],
            is_rep: [PROB_INIT; NUM_STATES],
            is_rep_g0: [PROB_INIT; NUM_STATES],
            is_rep_g1: [PROB_INIT; NUM_STATES],
            is_rep_g2: [PROB_INIT; NUM_STATES],
            is_rep0_long: [[PROB_INIT; PB_STATES_MAX]; NUM_STATES],
            pos_slot_encoder: [[PROB_INIT; 1 << NUM_POS_SLOT_BITS]; NUM_LEN_TO_POS_STATES],
            pos_encoders: [PROB_INIT; 1 + (NUM_FULL_DISTANCES - END_POS_MODEL_INDEX) as usize],
            pos_align_encoder: [PROB_INIT; ALIGN_TABLE_SIZE],
            len_enc: LenEnc::new(),
            rep_len_enc: LenEnc::new(),
        };
        // LzmaEnc_InitPrices.
        e.fill_distances_prices();
        e.fill_align_prices();
        for le in [&mut e.len_enc, &mut e.rep_len_enc] {
            le.table_size = NUM_FAST_BYTES + 1 - MATCH_LEN_MIN;
            for ps in 0..1 << PB {
                le.update_table(ps, &e.prices);
            }
        }
        e
    }

    fn data(&self) -> &'a [u8] {
        self.mf.data()
    }

    /// The offset in `lit_probs` of the coder for a literal at `pos` after `prev_byte`
    /// (`LIT_PROBS`).
    fn lit_offset(pos: u32, prev_byte: u8) -> usize {
        let lp_mask = (1u32 << LP) - 1;
        ((((pos & lp_mask) << LC) + (u32::from(prev_byte) >> (8 - LC))) * 0x300) as usize
    }

    fn lit_probs_at(&self, pos: u32, prev_byte: u8) -> &[u16] {
        &self.lit_probs[Self::lit_offset(pos, prev_byte)..][..0x300]
    }

    fn move_pos(&mut self, num: u32) {
        if num != 0 {
            self.additional_offset += num;
            self.mf.skip(num);
        }
    }

    /// `ReadMatchDistances`: `(longest length, number of values in match_distances)`.
    fn read_match_distances(&mut self) -> (u32, u32) {
        let n = self.mf.get_matches(&mut self.match_distances) as u32;
        let mut len_res = 0;
        if n > 0 {
            len_res = self.match_distances[(n - 2) as usize];
            if len_res == NUM_FAST_BYTES {
                let num_avail = (self.mf.available() + 1).min(MATCH_LEN_MAX);
                let data = self.data();
                let pby = self.mf.cur() - 1;
                let pby2 = pby - (self.match_distances[(n - 1) as usize] as usize + 1);
                while len_res < num_avail
                    && data[pby + len_res as usize] == data[pby2 + len_res as usize]
                {
                    len_res += 1;
                }
            }
        }
        self.additional_offset += 1;
        (len_res, n)
    }

    fn rep_len1_price(&self, state: u32, pos_state: u32) -> u32 {
        let s = state as usize;
        self.prices.p0(self.is_rep_g0[s]) + self.prices.p0(self.is_rep0_long[s][pos_state as usize])
    }

    fn pure_rep_price(&self, rep_index: u32, state: u32, pos_state: u32) -> u32 {
        let s = state as usize;
        let p = &self.prices;
        if rep_index == 0 {
            p.p0(self.is_rep_g0[s]) + p.p1(self.is_rep0_long[s][pos_state as usize])
        } else {
            let mut price = p.p1(self.is_rep_g0[s]);
            if rep_index == 1 {
                price += p.p0(self.is_rep_g1[s]);
            } else {
                price += p.p1(self.is_rep_g1[s]);
                price += p.bit(self.is_rep_g2[s], rep_index - 2);
            }
            price
        }
    }

    fn rep_price(&self, rep_index: u32, len: u32, state: u32, pos_state: u32) -> u32 {
        self.rep_len_enc.price(pos_state, len) + self.pure_rep_price(rep_index, state, pos_state)
    }

    /// The price of a match of `len` at distance `dist` (the distance part of `GetOptimum`).
    fn dist_price(&self, dist: u32, len: u32) -> u32 {
        let lps = len_to_pos_state(len);
        if dist < NUM_FULL_DISTANCES {
            self.distances_prices[lps][dist as usize]
        } else {
            self.align_prices[(dist & ALIGN_MASK) as usize]
                + self.pos_slot_prices[lps][pos_slot(dist) as usize]
        }
    }

    /// `Backward`: turns the chain of `posPrev` into forward order; `(len, back)` of the
    /// first step.
    fn backward(&mut self, mut cur: u32) -> (u32, u32) {
        let opt = &mut self.opt;
        let mut pos_mem = opt[cur as usize].pos_prev;
        let mut back_mem = opt[cur as usize].back_prev;
        self.optimum_end_index = cur;
        loop {
            let c = opt[cur as usize];
            if c.prev1_is_char {
                opt[pos_mem as usize].make_as_char();
                opt[pos_mem as usize].pos_prev = pos_mem - 1;
                if c.prev2 {
                    let o = &mut opt[pos_mem as usize - 1];
                    o.prev1_is_char = false;
                    o.pos_prev = c.pos_prev2;
                    o.back_prev = c.back_prev2;
                }
            }
            let pos_prev = pos_mem;
            let back_cur = back_mem;
            back_mem = opt[pos_prev as usize].back_prev;
            pos_mem = opt[pos_prev as usize].pos_prev;
            opt[pos_prev as usize].back_prev = back_cur;
            opt[pos_prev as usize].pos_prev = cur;
            cur = pos_prev;
            if cur == 0 {
                break;
            }
        }
        self.optimum_current_index = opt[0].pos_prev;
        (self.optimum_current_index, opt[0].back_prev)
    }

    /// `GetOptimum`: `(len, back)` of the next step: `back` `u32::MAX` is a literal, below
    /// 4 a repeated distance, else the distance + 4.
    fn get_optimum(&mut self, mut position: u32) -> (u32, u32) {
        if self.optimum_end_index != self.optimum_current_index {
            let o = self.opt[self.optimum_current_index as usize];
            let len_res = o.pos_prev - self.optimum_current_index;
            self.optimum_current_index = o.pos_prev;
            return (len_res, o.back_prev);
        }
        self.optimum_current_index = 0;
        self.optimum_end_index = 0;

        let mut num_available = self.mf.available();
        let (len_main, num_pairs) = if self.longest_match_was_found {
            self.longest_match_was_found = false;
            (self.longest_match_length, self.num_distance_pairs)
        } else {
            self.read_match_distances()
        };
        let buf = self.data();
        let data = self.mf.cur() - 1;
        if num_available < 2 {
            return (1, u32::MAX);
        }
        num_available = num_available.min(MATCH_LEN_MAX);

        let mut reps = [0u32; NUM_REPS];
        let mut rep_lens = [0u32; NUM_REPS];
        let mut rep_max_index = 0usize;
        for i in 0..NUM_REPS {
            reps[i] = self.reps[i];
            let data2 = data - (reps[i] as usize + 1);
            if buf[data] != buf[data2] || buf[data + 1] != buf[data2 + 1] {
                rep_lens[i] = 0;
                continue;
            }
            let mut len_test = 2u32;
            while len_test < num_available
                && buf[data + len_test as usize] == buf[data2 + len_test as usize]
            {
                len_test += 1;
            }
            rep_lens[i] = len_test;
            if len_test > rep_lens[rep_max_index] {
                rep_max_index = i;
            }
        }
        if rep_lens[rep_max_index] >= NUM_FAST_BYTES {
            let len_res = rep_lens[rep_max_index];
            self.move_pos(len_res - 1);
            return (len_res, rep_max_index as u32);
        }
        if len_main >= NUM_FAST_BYTES {
            let back = self.match_distances[(num_pairs - 1) as usize] + NUM_REPS as u32;
            self.move_pos(len_main - 1);
            return (len_main, back);
        }
        let current_byte = buf[data];
        let match_byte = buf[data - (reps[0] as usize + 1)];
        if len_main < 2 && current_byte != match_byte && rep_lens[rep_max_index] < 2 {
            return (1, u32::MAX);
        }

        let state = self.state;
        let s = state as usize;
        self.opt[0].state = state;
        let pos_state = position & ((1 << PB) - 1);
        let ps = pos_state as usize;
        {
            let probs = self.lit_probs_at(position, buf[data - 1]);
            let lit = if is_char_state(state) {
                self.prices.literal(probs, u32::from(current_byte))
            } else {
                self.prices
                    .literal_matched(probs, u32::from(current_byte), u32::from(match_byte))
            };
            self.opt[1].price = self.prices.p0(self.is_match[s][ps]) + lit;
        }
        self.opt[1].make_as_char();

        let match_price = self.prices.p1(self.is_match[s][ps]);
        let rep_match_price = match_price + self.prices.p1(self.is_rep[s]);
        if match_byte == current_byte {
            let short_rep_price = rep_match_price + self.rep_len1_price(state, pos_state);
            if short_rep_price < self.opt[1].price {
                self.opt[1].price = short_rep_price;
                self.opt[1].make_as_short_rep();
            }
        }
        let mut len_end = len_main.max(rep_lens[rep_max_index]);
        if len_end < 2 {
            return (1, self.opt[1].back_prev);
        }
        self.opt[1].pos_prev = 0;
        self.opt[0].backs = reps;

        let mut len = len_end;
        loop {
            self.opt[len as usize].price = INFINITY_PRICE;
            len -= 1;
            if len < 2 {
                break;
            }
        }

        for (i, &rl) in rep_lens.iter().enumerate() {
            let mut rep_len = rl;
            if rep_len < 2 {
                continue;
            }
            let price = rep_match_price + self.pure_rep_price(i as u32, state, pos_state);
            loop {
                let cur_and_len_price = price + self.rep_len_enc.price(pos_state, rep_len);
                let o = &mut self.opt[rep_len as usize];
                if cur_and_len_price < o.price {
                    o.price = cur_and_len_price;
                    o.pos_prev = 0;
                    o.back_prev = i as u32;
                    o.prev1_is_char = false;
                }
                rep_len -= 1;
                if rep_len < 2 {
                    break;
                }
            }
        }

        let normal_match_price = match_price + self.prices.p0(self.is_rep[s]);
        len = if rep_lens[0] >= 2 { rep_lens[0] + 1 } else { 2 };
        if len <= len_main {
            let mut offs = 0usize;
            while len > self.match_distances[offs] {
                offs += 2;
            }
            loop {
                let distance = self.match_distances[offs + 1];
                let cur_and_len_price = normal_match_price
                    + self.len_enc.price(pos_state, len)
                    + self.dist_price(distance, len);
                let o = &mut self.opt[len as usize];
                if cur_and_len_price < o.price {
                    o.price = cur_and_len_price;
                    o.pos_prev = 0;
                    o.back_prev = distance + NUM_REPS as u32;
                    o.prev1_is_char = false;
                }
                if len == self.match_distances[offs] {
                    offs += 2;
                    if offs == num_pairs as usize {
                        break;
                    }
                }
                len += 1;
            }
        }

        let mut cur = 0u32;
        loop {
            cur += 1;
            if cur == len_end {
                return self.backward(cur);
            }
            let mut num_available_full = self.mf.available();
            let (mut new_len, mut num_pairs) = self.read_match_distances();
            if new_len >= NUM_FAST_BYTES {
                self.num_distance_pairs = num_pairs;
                self.longest_match_length = new_len;
                self.longest_match_was_found = true;
                return self.backward(cur);
            }
            position += 1;
            let cur_opt = self.opt[cur as usize];
            let mut pos_prev = cur_opt.pos_prev;
            let mut state;
            if cur_opt.prev1_is_char {
                pos_prev -= 1;
                if cur_opt.prev2 {
                    state = self.opt[cur_opt.pos_prev2 as usize].state;
                    state = if cur_opt.back_prev2 < NUM_REPS as u32 {
                        REP_NEXT[state as usize]
                    } else {
                        MATCH_NEXT[state as usize]
                    };
                } else {
                    state = self.opt[pos_prev as usize].state;
                }
                state = LITERAL_NEXT[state as usize];
            } else {
                state = self.opt[pos_prev as usize].state;
            }
            if pos_prev == cur - 1 {
                state = if cur_opt.is_short_rep() {
                    SHORT_REP_NEXT[state as usize]
                } else {
                    LITERAL_NEXT[state as usize]
                };
            } else {
                let pos;
                if cur_opt.prev1_is_char && cur_opt.prev2 {
                    pos_prev = cur_opt.pos_prev2;
                    pos = cur_opt.back_prev2;
                    state = REP_NEXT[state as usize];
                } else {
                    pos = cur_opt.back_prev;
                    state = if pos < NUM_REPS as u32 {
                        REP_NEXT[state as usize]
                    } else {
                        MATCH_NEXT[state as usize]
                    };
                }
                let prev_backs = self.opt[pos_prev as usize].backs;
                if pos < NUM_REPS as u32 {
                    let pos = pos as usize;
                    reps[0] = prev_backs[pos];
                    reps[1..=pos].copy_from_slice(&prev_backs[..pos]);
                    reps[pos + 1..].copy_from_slice(&prev_backs[pos + 1..]);
                } else {
                    reps[0] = pos - NUM_REPS as u32;
                    reps[1..].copy_from_slice(&prev_backs[..NUM_REPS - 1]);
                }
            }
            {
                let o = &mut self.opt[cur as usize];
                o.state = state;
                o.backs = reps;
            }
            let s = state as usize;

            let cur_price = cur_opt.price;
            let mut next_is_char = false;
            let data = self.mf.cur() - 1;
            let current_byte = buf[data];
            let match_byte = buf[data - (reps[0] as usize + 1)];
            let pos_state = position & ((1 << PB) - 1);
            let ps = pos_state as usize;

            let cur_and1_price = {
                let probs = self.lit_probs_at(position, buf[data - 1]);
                let lit = if is_char_state(state) {
                    self.prices.literal(probs, u32::from(current_byte))
                } else {
                    self.prices.literal_matched(
                        probs,
                        u32::from(current_byte),
                        u32::from(match_byte),
                    )
                };
                cur_price + self.prices.p0(self.is_match[s][ps]) + lit
            };

            let next = cur as usize + 1;
            if cur_and1_price < self.opt[next].price {
                let o = &mut self.opt[next];
                o.price = cur_and1_price;
                o.pos_prev = cur;
                o.make_as_char();
                next_is_char = true;
            }

            let match_price = cur_price + self.prices.p1(self.is_match[s][ps]);
            let rep_match_price = match_price + self.prices.p1(self.is_rep[s]);

            if match_byte == current_byte
                && !(self.opt[next].pos_prev < cur && self.opt[next].back_prev == 0)
            {
                let short_rep_price = rep_match_price + self.rep_len1_price(state, pos_state);
                if short_rep_price <= self.opt[next].price {
                    let o = &mut self.opt[next];
                    o.price = short_rep_price;
                    o.pos_prev = cur;
                    o.make_as_short_rep();
                    next_is_char = true;
                }
            }

            num_available_full = num_available_full.min(NUM_OPTS - 1 - cur);
            let mut num_available = num_available_full;
            if num_available < 2 {
                continue;
            }
            num_available = num_available.min(NUM_FAST_BYTES);

            if !next_is_char && match_byte != current_byte {
                // Literal + rep0.
                let data2 = data - (reps[0] as usize + 1);
                let limit = (NUM_FAST_BYTES + 1).min(num_available_full);
                let mut temp = 1u32;
                while temp < limit && buf[data + temp as usize] == buf[data2 + temp as usize] {
                    temp += 1;
                }
                let len_test2 = temp - 1;
                if len_test2 >= 2 {
                    let state2 = LITERAL_NEXT[s];
                    let pos_state_next = (position + 1) & ((1 << PB) - 1);
                    let next_rep_match_price = cur_and1_price
                        + self
                            .prices
                            .p1(self.is_match[state2 as usize][pos_state_next as usize])
                        + self.prices.p1(self.is_rep[state2 as usize]);
                    let offset = cur + 1 + len_test2;
                    while len_end < offset {
                        len_end += 1;
                        self.opt[len_end as usize].price = INFINITY_PRICE;
                    }
                    let cur_and_len_price =
                        next_rep_match_price + self.rep_price(0, len_test2, state2, pos_state_next);
                    let o = &mut self.opt[offset as usize];
                    if cur_and_len_price < o.price {
                        o.price = cur_and_len_price;
                        o.pos_prev = cur + 1;
                        o.back_prev = 0;
                        o.prev1_is_char = true;
                        o.prev2 = false;
                    }
                }
            }

            let mut start_len = 2u32;
            for rep_index in 0..NUM_REPS as u32 {
                let data2 = data - (reps[rep_index as usize] as usize + 1);
                if buf[data] != buf[data2] || buf[data + 1] != buf[data2 + 1] {
                    continue;
                }
                let mut len_test = 2u32;
                while len_test < num_available
                    && buf[data + len_test as usize] == buf[data2 + len_test as usize]
                {
                    len_test += 1;
                }
                while len_end < cur + len_test {
                    len_end += 1;
                    self.opt[len_end as usize].price = INFINITY_PRICE;
                }
                let len_test_temp = len_test;
                let price = rep_match_price + self.pure_rep_price(rep_index, state, pos_state);
                loop {
                    let cur_and_len_price = price + self.rep_len_enc.price(pos_state, len_test);
                    let o = &mut self.opt[(cur + len_test) as usize];
                    if cur_and_len_price < o.price {
                        o.price = cur_and_len_price;
                        o.pos_prev = cur;
                        o.back_prev = rep_index;
                        o.prev1_is_char = false;
                    }
                    len_test -= 1;
                    if len_test < 2 {
                        break;
                    }
                }
                len_test = len_test_temp;
                if rep_index == 0 {
                    start_len = len_test + 1;
                }

                // Rep + literal + rep0.
                let mut len_test2 = len_test + 1;
                let limit = (len_test2 + NUM_FAST_BYTES).min(num_available_full);
                while len_test2 < limit
                    && buf[data + len_test2 as usize] == buf[data2 + len_test2 as usize]
                {
                    len_test2 += 1;
                }
                len_test2 -= len_test + 1;
                if len_test2 >= 2 {
                    let mut state2 = REP_NEXT[s];
                    let mut pos_state_next = (position + len_test) & ((1 << PB) - 1);
                    let lt = len_test as usize;
                    let cur_and_len_char_price = price
                        + self.rep_len_enc.price(pos_state, len_test)
                        + self
                            .prices
                            .p0(self.is_match[state2 as usize][pos_state_next as usize])
                        + self.prices.literal_matched(
                            self.lit_probs_at(position + len_test, buf[data + lt - 1]),
                            u32::from(buf[data + lt]),
                            u32::from(buf[data2 + lt]),
                        );
                    state2 = LITERAL_NEXT[state2 as usize];
                    pos_state_next = (position + len_test + 1) & ((1 << PB) - 1);
                    let next_rep_match_price = cur_and_len_char_price
                        + self
                            .prices
                            .p1(self.is_match[state2 as usize][pos_state_next as usize])
                        + self.prices.p1(self.is_rep[state2 as usize]);
                    let offset = cur + len_test + 1 + len_test2;
                    while len_end < offset {
                        len_end += 1;
                        self.opt[len_end as usize].price = INFINITY_PRICE;
                    }
                    let cur_and_len_price =
                        next_rep_match_price + self.rep_price(0, len_test2, state2, pos_state_next);
                    let o = &mut self.opt[offset as usize];
                    if cur_and_len_price < o.price {
                        o.price = cur_and_len_price;
                        o.pos_prev = cur + len_test + 1;
                        o.back_prev = 0;
                        o.prev1_is_char = true;
                        o.prev2 = true;
                        o.pos_prev2 = cur;
                        o.back_prev2 = rep_index;
                    }
                }
            }

            if new_len > num_available {
                new_len = num_available;
                num_pairs = 0;
                while new_len > self.match_distances[num_pairs as usize] {
                    num_pairs += 2;
                }
                self.match_distances[num_pairs as usize] = new_len;
                num_pairs += 2;
            }
            if new_len >= start_len {
                let normal_match_price = match_price + self.prices.p0(self.is_rep[s]);
                while len_end < cur + new_len {
                    len_end += 1;
                    self.opt[len_end as usize].price = INFINITY_PRICE;
                }
                let mut offs = 0usize;
                while start_len > self.match_distances[offs] {
                    offs += 2;
                }
                let mut cur_back = self.match_distances[offs + 1];
                let mut len_test = start_len;
                loop {
                    let cur_and_len_price = normal_match_price
                        + self.len_enc.price(pos_state, len_test)
                        + self.dist_price(cur_back, len_test);
                    let o = &mut self.opt[(cur + len_test) as usize];
                    if cur_and_len_price < o.price {
                        o.price = cur_and_len_price;
                        o.pos_prev = cur;
                        o.back_prev = cur_back + NUM_REPS as u32;
                        o.prev1_is_char = false;
                    }

                    if len_test == self.match_distances[offs] {
                        // Match + literal + rep0.
                        let data2 = data - (cur_back as usize + 1);
                        let mut len_test2 = len_test + 1;
                        let limit = (len_test2 + NUM_FAST_BYTES).min(num_available_full);
                        while len_test2 < limit
                            && buf[data + len_test2 as usize] == buf[data2 + len_test2 as usize]
                        {
                            len_test2 += 1;
                        }
                        len_test2 -= len_test + 1;
                        if len_test2 >= 2 {
                            let mut state2 = MATCH_NEXT[s];
                            let mut pos_state_next = (position + len_test) & ((1 << PB) - 1);
                            let lt = len_test as usize;
                            let cur_and_len_char_price = cur_and_len_price
                                + self
                                    .prices
                                    .p0(self.is_match[state2 as usize][pos_state_next as usize])
                                + self.prices.literal_matched(
                                    self.lit_probs_at(position + len_test, buf[data + lt - 1]),
                                    u32::from(buf[data + lt]),
                                    u32::from(buf[data2 + lt]),
                                );
                            state2 = LITERAL_NEXT[state2 as usize];
                            pos_state_next = (pos_state_next + 1) & ((1 << PB) - 1);
                            let next_rep_match_price = cur_and_len_char_price
                                + self
                                    .prices
                                    .p1(self.is_match[state2 as usize][pos_state_next as usize])
                                + self.prices.p1(self.is_rep[state2 as usize]);
                            let offset = cur + len_test + 1 + len_test2;
                            while len_end < offset {
                                len_end += 1;
                                self.opt[len_end as usize].price = INFINITY_PRICE;
                            }
                            let cur_and_len_price = next_rep_match_price
                                + self.rep_price(0, len_test2, state2, pos_state_next);
                            let o = &mut self.opt[offset as usize];
                            if cur_and_len_price < o.price {
                                o.price = cur_and_len_price;
                                o.pos_prev = cur + len_test + 1;
                                o.back_prev = 0;
                                o.prev1_is_char = true;
                                o.prev2 = true;
                                o.pos_prev2 = cur;
                                o.back_prev2 = cur_back + NUM_REPS as u32;
                            }
                        }
                        offs += 2;
                        if offs == num_pairs as usize {
                            break;
                        }
                        cur_back = self.match_distances[offs + 1];
                    }
                    len_test += 1;
                }
            }
        }
    }

    /// `FillAlignPrices`.
    fn fill_align_prices(&mut self) {
        for i in 0..ALIGN_TABLE_SIZE {
            self.align_prices[i] =
                self.prices
                    .tree_reverse(&self.pos_align_encoder, NUM_ALIGN_BITS, i as u32);
        }
        self.align_price_count = 0;
    }

    /// `FillDistancesPrices`.
    fn fill_distances_prices(&mut self) {
        let mut temp_prices = [0u32; NUM_FULL_DISTANCES as usize];
        for i in START_POS_MODEL_INDEX..NUM_FULL_DISTANCES {
            let slot = pos_slot(i);
            let footer_bits = (slot >> 1) - 1;
            let base = (2 | (slot & 1)) << footer_bits;
            temp_prices[i as usize] = self.prices.tree_reverse(
                &self.pos_encoders[(base - slot) as usize..],
                footer_bits,
                i - base,
            );
        }
        for lps in 0..NUM_LEN_TO_POS_STATES {
            let encoder = &self.pos_slot_encoder[lps];
            let slot_prices = &mut self.pos_slot_prices[lps];
            for slot in 0..self.dist_table_size {
                slot_prices[slot as usize] = self.prices.tree(encoder, NUM_POS_SLOT_BITS, slot);
            }
            for slot in END_POS_MODEL_INDEX..self.dist_table_size {
                slot_prices[slot as usize] +=
                    ((slot >> 1) - 1 - NUM_ALIGN_BITS) << NUM_BIT_PRICE_SHIFT_BITS;
            }
            let dp = &mut self.distances_prices[lps];
            for i in 0..START_POS_MODEL_INDEX {
                dp[i as usize] = slot_prices[i as usize];
            }
            for i in START_POS_MODEL_INDEX..NUM_FULL_DISTANCES {
                dp[i as usize] = slot_prices[pos_slot(i) as usize] + temp_prices[i as usize];
            }
        }
        self.match_price_count = 0;
    }

    /// `LzmaEnc_Encode` (`LzmaEnc_CodeOneBlock` until the input ends, then `Flush` without an
    /// end marker): the raw stream.
    pub(super) fn encode(mut self) -> Vec<u8> {
        let pb_mask = (1u32 << PB) - 1;
        if self.mf.available() == 0 {
            self.rc.flush();
            return self.rc.out;
        }
        // The first byte is a literal with no match context.
        self.read_match_distances();
        self.rc
            .encode_bit(&mut self.is_match[self.state as usize][0], 0);
        self.state = LITERAL_NEXT[self.state as usize];
        let first = self.data()[self.mf.cur() - self.additional_offset as usize];
        self.rc
            .lit_encode(&mut self.lit_probs[..0x300], u32::from(first));
        self.additional_offset -= 1;
        let mut now_pos = 1u32;

        if self.mf.available() != 0 {
            loop {
                let (len, pos) = self.get_optimum(now_pos);
                let pos_state = now_pos & pb_mask;
                let ps = pos_state as usize;
                let s = self.state as usize;
                if len == 1 && pos == u32::MAX {
                    self.rc.encode_bit(&mut self.is_match[s][ps], 0);
                    let data = self.data();
                    let at = self.mf.cur() - self.additional_offset as usize;
                    let cur_byte = u32::from(data[at]);
                    let off = Self::lit_offset(now_pos, data[at - 1]);
                    let probs = &mut self.lit_probs[off..off + 0x300];
                    if is_char_state(self.state) {
                        self.rc.lit_encode(probs, cur_byte);
                    } else {
                        let match_byte = data[at - self.reps[0] as usize - 1];
                        self.rc
                            .lit_encode_matched(probs, cur_byte, u32::from(match_byte));
                    }
                    self.state = LITERAL_NEXT[s];
                } else {
                    self.rc.encode_bit(&mut self.is_match[s][ps], 1);
                    if pos < NUM_REPS as u32 {
                        self.rc.encode_bit(&mut self.is_rep[s], 1);
                        if pos == 0 {
                            self.rc.encode_bit(&mut self.is_rep_g0[s], 0);
                            self.rc
                                .encode_bit(&mut self.is_rep0_long[s][ps], u32::from(len != 1));
                        } else {
                            let distance = self.reps[pos as usize];
                            self.rc.encode_bit(&mut self.is_rep_g0[s], 1);
                            if pos == 1 {
                                self.rc.encode_bit(&mut self.is_rep_g1[s], 0);
                            } else {
                                self.rc.encode_bit(&mut self.is_rep_g1[s], 1);
                                self.rc.encode_bit(&mut self.is_rep_g2[s], pos - 2);
                                if pos == 3 {
                                    self.reps[3] = self.reps[2];
                                }
                                self.reps[2] = self.reps[1];
                            }
                            self.reps[1] = self.reps[0];
                            self.reps[0] = distance;
                        }
                        if len == 1 {
                            self.state = SHORT_REP_NEXT[s];
                        } else {
                            self.rep_len_enc.encode(
                                &mut self.rc,
                                len - MATCH_LEN_MIN,
                                pos_state,
                                &self.prices,
                            );
                            self.state = REP_NEXT[s];
                        }
                    } else {
                        self.rc.encode_bit(&mut self.is_rep[s], 0);
                        self.state = MATCH_NEXT[s];
                        self.len_enc.encode(
                            &mut self.rc,
                            len - MATCH_LEN_MIN,
                            pos_state,
                            &self.prices,
                        );
                        let dist = pos - NUM_REPS as u32;
                        let slot = pos_slot(dist);
                        let lps = len_to_pos_state(len);
                        self.rc.tree_encode(
                            &mut self.pos_slot_encoder[lps],
                            NUM_POS_SLOT_BITS,
                            slot,
                        );
                        if slot >= START_POS_MODEL_INDEX {
                            let footer_bits = (slot >> 1) - 1;
                            let base = (2 | (slot & 1)) << footer_bits;
                            let reduced = dist - base;
                            if slot < END_POS_MODEL_INDEX {
                                self.rc.tree_reverse_encode(
                                    &mut self.pos_encoders[(base - slot) as usize..],
                                    footer_bits,
                                    reduced,
                                );
                            } else {
                                self.rc.encode_direct_bits(
                                    reduced >> NUM_ALIGN_BITS,
                                    footer_bits - NUM_ALIGN_BITS,
                                );
                                self.rc.tree_reverse_encode(
                                    &mut self.pos_align_encoder,
                                    NUM_ALIGN_BITS,
                                    reduced & ALIGN_MASK,
                                );
                                self.align_price_count += 1;
                            }
                        }
                        self.reps[3] = self.reps[2];
                        self.reps[2] = self.reps[1];
                        self.reps[1] = self.reps[0];
                        self.reps[0] = dist;
                        self.match_price_count += 1;
                    }
                }
                self.additional_offset -= len;
                now_pos += len;
                if self.additional_offset == 0 {
                    if self.match_price_count >= 1 << 7 {
                        self.fill_distances_prices();
                    }
                    if self.align_price_count >= ALIGN_TABLE_SIZE as u32 {
                        self.fill_align_prices();
                    }
                    if self.mf.available() == 0 {
                        break;
                    }
                }
            }
        }
        self.rc.flush();
        self.rc.out
    }
}
