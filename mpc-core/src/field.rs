//! Prime fields: a generic [`PrimeField`] trait, a fast path [`Fp64`] for primes below 2^64 and
//! [`BigPrimeField`] over num-bigint for any prime.
//!
//! The engine is generic over the field so that the common case (32-bit secure integers, which
//! need a 64-bit prime) runs on machine words, while larger bit lengths still work.

use std::fmt::Debug;

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, ToPrimitive, Zero};
use rand::RngCore;

/// Errors from choosing or building a field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The modulus given is not a prime (Miller–Rabin).
    #[error("modulus {0} is not prime")]
    NotPrime(BigUint),
    /// The modulus does not fit the chosen representation.
    #[error("modulus {modulus} does not fit a {repr} field")]
    WrongSize {
        /// The modulus.
        modulus: BigUint,
        /// The representation that was asked for.
        repr: &'static str,
    },
    /// No prime with the wanted properties was found (bit length too small).
    #[error("no prime p = 3 mod 4 below 2^{bits}")]
    NoPrime {
        /// Bit length bound.
        bits: u64,
    },
}

/// A prime field. Elements are plain values; the field object carries the modulus.
///
/// All parties must use the same field; encodings are fixed-width little-endian of
/// [`PrimeField::byte_len`] bytes, and decoding rejects values `>= p` (a peer's garbage must never
/// be silently reduced).
// Elements are built by the field object, which carries the modulus, hence `from_*(&self, ..)`.
#[allow(clippy::wrong_self_convention)]
pub trait PrimeField: Clone + Debug + Send + Sync + 'static {
    /// A field element, always reduced into `[0, p)`.
    type Elem: Clone + PartialEq + Eq + Debug + Send + Sync + 'static;

    /// The prime modulus.
    fn modulus(&self) -> &BigUint;
    /// Width in bytes of an encoded element.
    fn byte_len(&self) -> usize;
    /// Additive identity.
    fn zero(&self) -> Self::Elem;
    /// Multiplicative identity.
    fn one(&self) -> Self::Elem;
    /// Embeds an unsigned integer (reduced mod p).
    fn from_u64(&self, v: u64) -> Self::Elem;
    /// Embeds an arbitrary integer (reduced mod p).
    fn from_biguint(&self, v: &BigUint) -> Self::Elem;
    /// The canonical representative in `[0, p)`.
    fn to_biguint(&self, a: &Self::Elem) -> BigUint;
    /// `a + b`.
    fn add(&self, a: &Self::Elem, b: &Self::Elem) -> Self::Elem;
    /// `a - b`.
    fn sub(&self, a: &Self::Elem, b: &Self::Elem) -> Self::Elem;
    /// `a * b`.
    fn mul(&self, a: &Self::Elem, b: &Self::Elem) -> Self::Elem;
    /// `a^e`.
    fn pow(&self, a: &Self::Elem, e: &BigUint) -> Self::Elem;
    /// `a^e` for every `a` in `bases` (one exponent): implementations may interleave them.
    fn pow_batch(&self, bases: &[Self::Elem], e: &BigUint) -> Vec<Self::Elem> {
        bases.iter().map(|a| self.pow(a, e)).collect()
    }
    /// Whether `a == 0`.
    fn is_zero(&self, a: &Self::Elem) -> bool;
    /// A uniformly random element (rejection sampling, so it is exactly uniform).
    fn random<R: RngCore + ?Sized>(&self, rng: &mut R) -> Self::Elem;
    /// Appends the fixed-width little-endian encoding of `a`.
    fn encode(&self, a: &Self::Elem, out: &mut Vec<u8>);
    /// Decodes exactly [`PrimeField::byte_len`] bytes; `None` if the value is not below p.
    fn decode(&self, bytes: &[u8]) -> Option<Self::Elem>;

    /// `-a`.
    fn neg(&self, a: &Self::Elem) -> Self::Elem {
        self.sub(&self.zero(), a)
    }
    /// Embeds a signed integer: negative values map to `p - |v|`.
    fn from_i64(&self, v: i64) -> Self::Elem {
        let m = self.from_u64(v.unsigned_abs());
        if v < 0 {
            self.neg(&m)
        } else {
            m
        }
    }
    /// Embeds a signed big integer.
    fn from_bigint(&self, v: &BigInt) -> Self::Elem {
        let m = self.from_biguint(v.magnitude());
        if v.sign() == Sign::Minus {
            self.neg(&m)
        } else {
            m
        }
    }
    /// The representative in `(-p/2, p/2]`, i.e. the signed integer a secure integer stands for.
    fn to_signed(&self, a: &Self::Elem) -> BigInt {
        let v = self.to_biguint(a);
        let p = self.modulus();
        if &v * 2u32 > *p {
            BigInt::from_biguint(Sign::Minus, p - v)
        } else {
            BigInt::from_biguint(Sign::Plus, v)
        }
    }
    /// `1/a`, or `None` for zero.
    fn inv(&self, a: &Self::Elem) -> Option<Self::Elem> {
        if self.is_zero(a) {
            return None;
        }
        let e = self.modulus() - 2u32;
        Some(self.pow(a, &e))
    }
    /// A square root of `a` if `a` is a quadratic residue (Tonelli–Shanks; one exponentiation when
    /// p = 3 mod 4, which is what the default primes are chosen for).
    fn sqrt(&self, a: &Self::Elem) -> Option<Self::Elem> {
        if self.is_zero(a) {
            return Some(self.zero());
        }
        let p = self.modulus();
        let one = self.one();
        let pm1 = p - 1u32;
        if self.pow(a, &(&pm1 >> 1)) != one {
            return None;
        }
        if p.bit(1) {
            return Some(self.pow(a, &((p + 1u32) >> 2)));
        }
        let s = pm1.trailing_zeros().unwrap_or(0);
        let q = &pm1 >> s;
        let minus_one = self.neg(&one);
        let mut z = self.from_u64(2);
        while self.pow(&z, &(&pm1 >> 1)) != minus_one {
            z = self.add(&z, &one);
        }
        let mut m = s;
        let mut c = self.pow(&z, &q);
        let mut t = self.pow(a, &q);
        let mut r = self.pow(a, &((&q + 1u32) >> 1));
        while t != one {
            let mut i = 0;
            let mut t2 = t.clone();
            while t2 != one {
                t2 = self.mul(&t2, &t2);
                i += 1;
            }
            let mut b = c.clone();
            for _ in 0..(m - i - 1) {
                b = self.mul(&b, &b);
            }
            m = i;
            c = self.mul(&b, &b);
            t = self.mul(&t, &c);
            r = self.mul(&r, &b);
        }
        Some(r)
    }
}

/// A prime field with modulus below 2^64, elements as `u64`, products via `u128`.
#[derive(Clone, Debug)]
pub struct Fp64 {
    p: u64,
    /// `2^64 - p` when it is below 2^32 (MPyC's primes are `2^64 - 189` and the like): then
    /// products reduce by two cheap folds instead of a 128-bit division.
    fold: Option<u64>,
    p_big: BigUint,
    bytes: usize,
}

impl Fp64 {
    /// Builds the field; the modulus must be a prime below 2^64.
    pub fn new(p: u64) -> Result<Self, FieldError> {
        let p_big = BigUint::from(p);
        if !is_probable_prime(&p_big) {
            return Err(FieldError::NotPrime(p_big));
        }
        let bytes = (p_big.bits() as usize).div_ceil(8);
        let c = p.wrapping_neg();
        let fold = (c < 1 << 32 && c != 0).then_some(c);
        Ok(Fp64 {
            p,
            fold,
            p_big,
            bytes,
        })
    }

    /// The modulus as a machine word.
    pub fn p(&self) -> u64 {
        self.p
    }

    /// `a^e` by left-to-right sliding windows of 4 bits: about 64 squarings and 16
    /// multiplications for a 64-bit exponent instead of 64 + 32. Random-bit generation does one
    /// such exponentiation per bit, which makes it the engine's main local cost.
    fn pow_u64(&self, a: u64, e: u64) -> u64 {
        let [r] = self.pow_lanes([a], e);
        r
    }

    /// [`Fp64::pow_u64`] on `N` bases at once. The exponent is shared, so every lane does the
    /// same operations in the same order; a multiplication's latency (a chain of dependent
    /// 128-bit products) then overlaps with the other lanes' instead of stalling.
    fn pow_lanes<const N: usize>(&self, a: [u64; N], e: u64) -> [u64; N] {
        let mut result = [1u64; N];
        if e == 0 {
            return result;
        }
        let mul = |x: &mut [u64; N], y: &[u64; N]| {
            for (x, y) in x.iter_mut().zip(y) {
                *x = self.mul(x, y);
            }
        };
        // odd[i] = a^(2i + 1)
        let mut a2 = a;
        mul(&mut a2, &a);
        let mut odd = [a; 8];
        for i in 1..8 {
            let mut next = odd[i - 1];
            mul(&mut next, &a2);
            odd[i] = next;
        }
        let mut i = 63 - e.leading_zeros() as i32;
        while i >= 0 {
            if (e >> i) & 1 == 0 {
                let r = result;
                mul(&mut result, &r);
                i -= 1;
                continue;
            }
            // The longest window e[i..=j] of at most 4 bits that ends in a 1.
            let mut j = (i - 3).max(0);
            while (e >> j) & 1 == 0 {
                j += 1;
            }
            let width = i - j + 1;
            let window = ((e >> j) & ((1u64 << width) - 1)) as usize;
            for _ in 0..width {
                let r = result;
                mul(&mut result, &r);
            }
            mul(&mut result, &odd[window >> 1]);
            i = j - 1;
        }
        result
    }
}

impl PrimeField for Fp64 {
    type Elem = u64;

    fn modulus(&self) -> &BigUint {
        &self.p_big
    }
    fn byte_len(&self) -> usize {
        self.bytes
    }
    fn zero(&self) -> u64 {
        0
    }
    fn one(&self) -> u64 {
        1
    }
    fn from_u64(&self, v: u64) -> u64 {
        v % self.p
    }
    fn from_biguint(&self, v: &BigUint) -> u64 {
        (v % &self.p_big).to_u64().unwrap_or(0)
    }
    fn to_biguint(&self, a: &u64) -> BigUint {
        BigUint::from(*a)
    }
    #[inline]
    fn add(&self, a: &u64, b: &u64) -> u64 {
        let (s, overflow) = a.overflowing_add(*b);
        if overflow || s >= self.p {
            s.wrapping_sub(self.p)
        } else {
            s
        }
    }
    #[inline]
    fn sub(&self, a: &u64, b: &u64) -> u64 {
        let (d, borrow) = a.overflowing_sub(*b);
        if borrow {
            d.wrapping_add(self.p)
        } else {
            d
        }
    }
    #[inline]
    fn mul(&self, a: &u64, b: &u64) -> u64 {
        let x = *a as u128 * *b as u128;
        match self.fold {
            // 2^64 = c (mod p): fold the high word twice, then one conditional subtraction.
            Some(c) => {
                let t = (x >> 64) * c as u128 + (x as u64) as u128;
                let t = (t >> 64) * c as u128 + (t as u64) as u128;
                let p = self.p as u128;
                (if t >= p { t - p } else { t }) as u64
            }
            None => (x % self.p as u128) as u64,
        }
    }
    fn pow(&self, a: &u64, e: &BigUint) -> u64 {
        match e.to_u64() {
            Some(e) => self.pow_u64(*a, e),
            None => {
                // Exponents above 2^64 only come from callers outside the protocols.
                let mut result = 1u64;
                let mut base = *a;
                for i in 0..e.bits() {
                    if e.bit(i) {
                        result = self.mul(&result, &base);
                    }
                    base = self.mul(&base, &base);
                }
                result
            }
        }
    }
    fn pow_batch(&self, bases: &[u64], e: &BigUint) -> Vec<u64> {
        const LANES: usize = 8;
        let Some(e) = e.to_u64() else {
            return bases.iter().map(|a| self.pow(a, e)).collect();
        };
        let mut out = Vec::with_capacity(bases.len());
        let mut chunks = bases.chunks_exact(LANES);
        for chunk in chunks.by_ref() {
            let mut lanes = [0u64; LANES];
            lanes.copy_from_slice(chunk);
            out.extend(self.pow_lanes(lanes, e));
        }
        out.extend(chunks.remainder().iter().map(|&a| self.pow_u64(a, e)));
        out
    }
    fn is_zero(&self, a: &u64) -> bool {
        *a == 0
    }
    fn random<R: RngCore + ?Sized>(&self, rng: &mut R) -> u64 {
        let mask = u64::MAX >> self.p.leading_zeros();
        loop {
            let v = rng.next_u64() & mask;
            if v < self.p {
                return v;
            }
        }
    }
    fn encode(&self, a: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&a.to_le_bytes()[..self.bytes]);
    }
    fn decode(&self, bytes: &[u8]) -> Option<u64> {
        if bytes.len() != self.bytes {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..self.bytes].copy_from_slice(bytes);
        let v = u64::from_le_bytes(buf);
        (v < self.p).then_some(v)
    }
}

/// A prime field of any size over num-bigint.
#[derive(Clone, Debug)]
pub struct BigPrimeField {
    p: BigUint,
    bytes: usize,
}

impl BigPrimeField {
    /// Builds the field; the modulus must be prime (checked with Miller–Rabin).
    pub fn new(p: BigUint) -> Result<Self, FieldError> {
        if !is_probable_prime(&p) {
            return Err(FieldError::NotPrime(p));
        }
        let bytes = (p.bits() as usize).div_ceil(8);
        Ok(BigPrimeField { p, bytes })
    }
}

impl PrimeField for BigPrimeField {
    type Elem = BigUint;

    fn modulus(&self) -> &BigUint {
        &self.p
    }
    fn byte_len(&self) -> usize {
        self.bytes
    }
    fn zero(&self) -> BigUint {
        BigUint::zero()
    }
    fn one(&self) -> BigUint {
        BigUint::one()
    }
    fn from_u64(&self, v: u64) -> BigUint {
        BigUint::from(v) % &self.p
    }
    fn from_biguint(&self, v: &BigUint) -> BigUint {
        v % &self.p
    }
    fn to_biguint(&self, a: &BigUint) -> BigUint {
        a.clone()
    }
    fn add(&self, a: &BigUint, b: &BigUint) -> BigUint {
        let s = a + b;
        if s >= self.p {
            s - &self.p
        } else {
            s
        }
    }
    fn sub(&self, a: &BigUint, b: &BigUint) -> BigUint {
        if a >= b {
            a - b
        } else {
            &self.p - (b - a)
        }
    }
    fn mul(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a * b) % &self.p
    }
    fn pow(&self, a: &BigUint, e: &BigUint) -> BigUint {
        a.modpow(e, &self.p)
    }
    fn is_zero(&self, a: &BigUint) -> bool {
        a.is_zero()
    }
    fn random<R: RngCore + ?Sized>(&self, rng: &mut R) -> BigUint {
        let bits = self.p.bits();
        let mut buf = vec![0u8; self.bytes];
        loop {
            rng.fill_bytes(&mut buf);
            let excess = (self.bytes as u64) * 8 - bits;
            if let Some(last) = buf.last_mut() {
                *last &= 0xffu8 >> excess;
            }
            let v = BigUint::from_bytes_le(&buf);
            if v < self.p {
                return v;
            }
        }
    }
    fn encode(&self, a: &BigUint, out: &mut Vec<u8>) {
        let mut b = a.to_bytes_le();
        b.resize(self.bytes, 0);
        out.extend_from_slice(&b);
    }
    fn decode(&self, bytes: &[u8]) -> Option<BigUint> {
        if bytes.len() != self.bytes {
            return None;
        }
        let v = BigUint::from_bytes_le(bytes);
        (v < self.p).then_some(v)
    }
}

/// Miller–Rabin with the first 20 primes as bases: deterministic below 3.3 * 10^24 and with a
/// negligible error probability above (the moduli are public, so an error could not be exploited
/// by a peer anyway; every party would just compute in the same non-field ring).
pub fn is_probable_prime(n: &BigUint) -> bool {
    if let Some(small) = n.to_u64() {
        return is_prime_u64(small);
    }
    const BASES: [u32; 20] = [
        2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
    ];
    let two = BigUint::from(2u32);
    if *n < two {
        return false;
    }
    for b in BASES {
        if *n == BigUint::from(b) {
            return true;
        }
        if (n % b).is_zero() {
            return false;
        }
    }
    let nm1 = n - 1u32;
    let s = nm1.trailing_zeros().unwrap_or(0);
    let d = &nm1 >> s;
    'bases: for b in BASES {
        let mut x = BigUint::from(b).modpow(&d, n);
        if x.is_one() || x == nm1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == nm1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// Deterministic Miller–Rabin for 64-bit numbers (these 12 bases suffice below 3.3 * 10^24).
fn is_prime_u64(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for b in BASES {
        if n == b {
            return true;
        }
        if n.is_multiple_of(b) {
            return false;
        }
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, a);
            }
            a = mulmod(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for b in BASES {
        let mut x = powmod(b, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// The largest prime `p = 3 mod 4` below `2^bits`, as MPyC chooses for secure integers (with
/// `bits = l + k + 2`). For `bits = 64` this is `2^64 - 189`.
pub fn largest_prime_3_mod_4_below_pow2(bits: u64) -> Result<BigUint, FieldError> {
    if bits < 3 {
        return Err(FieldError::NoPrime { bits });
    }
    // 2^bits - 1 is 3 mod 4; step down by 4 to stay in the residue class.
    let mut c = (BigUint::one() << bits) - 1u32;
    let four = BigUint::from(4u32);
    while c > four {
        if is_probable_prime(&c) {
            return Ok(c);
        }
        c -= &four;
    }
    if bits >= 2 {
        return Ok(BigUint::from(3u32));
    }
    Err(FieldError::NoPrime { bits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn default_prime_for_32_bit_integers_matches_mpyc() {
        let p = largest_prime_3_mod_4_below_pow2(32 + 30 + 2).expect("prime");
        assert_eq!(p, (BigUint::one() << 64u32) - 189u32);
    }

    #[test]
    fn sqrt_works_for_primes_1_mod_4() {
        let f = Fp64::new(97).expect("prime"); // 97 = 1 mod 4 exercises Tonelli-Shanks
        for a in 1..97u64 {
            let sq = f.mul(&a, &a);
            let r = f.sqrt(&sq).expect("residue");
            assert_eq!(f.mul(&r, &r), sq);
        }
    }

    #[test]
    fn decoding_rejects_values_not_below_the_modulus() {
        let f = Fp64::new(251).expect("prime");
        assert_eq!(f.decode(&[250]), Some(250));
        assert_eq!(f.decode(&[251]), None);
        assert_eq!(f.decode(&[1, 0]), None);
    }

    #[test]
    fn big_and_small_fields_agree() {
        let p = (BigUint::one() << 64u32) - 189u32;
        let small = Fp64::new(u64::MAX - 188).expect("prime");
        let big = BigPrimeField::new(p).expect("prime");
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for _ in 0..200 {
            let a = small.random(&mut rng);
            let b = small.random(&mut rng);
            let (ab, bb) = (BigUint::from(a), BigUint::from(b));
            assert_eq!(BigUint::from(small.mul(&a, &b)), big.mul(&ab, &bb));
            assert_eq!(BigUint::from(small.add(&a, &b)), big.add(&ab, &bb));
            assert_eq!(BigUint::from(small.sub(&a, &b)), big.sub(&ab, &bb));
            let ia = small.inv(&a).expect("nonzero");
            assert_eq!(small.mul(&a, &ia), 1);
            // The windowed exponentiation against num-bigint's.
            for e in [0u64, 1, 2, 15, 16, 17, 0x8000_0000_0000_0001, u64::MAX, b] {
                let e = BigUint::from(e);
                assert_eq!(
                    BigUint::from(small.pow(&a, &e)),
                    big.pow(&ab, &e),
                    "{a}^{e}"
                );
                let batch = small.pow_batch(&[a, b, 1, 2, a, b, 7], &e);
                assert_eq!(batch, [a, b, 1, 2, a, b, 7].map(|x| small.pow(&x, &e)));
            }
        }
    }
}
