//! What the tray's icon shows for given counts: the icon with a count badge
//! ([`render`]), greyed or dotted for the connection's health
//! ([`render_state`]). The counts in words are `lamplighter-view`'s.
//!
//! Everything here is a pure function of its inputs, so the pixels are unit
//! tested: [`read_badge`] decodes the digits back from an icon, the way a
//! person reads them, and the tests check that what is drawn says the count.
//!
//! The base image is `icons/64x64.png` (made from `icons/source.png` by
//! `cargo run -p xtask -- icons`), embedded at build time and scaled down by
//! area averaging to any size from 16 to 64 pixels. The badge is a red pill
//! in the top-right corner with white digits from a 3×5 bitmap font, scaled
//! by whole pixels so it stays sharp; counts above 99 read "99+"; a count
//! of 0 draws no badge.
//!
//! ```
//! let icon = lamplighter_badge::render(7, 32);
//! assert_eq!((icon.width, icon.height), (32, 32));
//! assert_eq!(lamplighter_badge::read_badge(&icon).as_deref(), Some("7"));
//! ```

use std::sync::OnceLock;

/// Smallest and largest icon sizes [`render`] draws.
pub const SIZES: std::ops::RangeInclusive<u32> = 16..=64;

/// The badge's fill colour (RGBA).
pub const BADGE_RED: [u8; 4] = [0xd9, 0x30, 0x25, 0xff];
/// The digits' colour (RGBA).
pub const DIGIT_WHITE: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

/// The "phone does not take the lamp" dot's colour (RGBA).
pub const PHONE_AMBER: [u8; 4] = [0xf0, 0xa0, 0x00, 0xff];

/// What the icon says beyond the count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Connected, lamps delivered.
    #[default]
    Ok,
    /// The mailbox is not connected or sign-in is needed: the icon is grey.
    Disconnected,
    /// A phone does not take the lamp: an amber dot, bottom right.
    PhoneUnreachable,
}

const BASE_PNG: &[u8] = include_bytes!("../../../icons/64x64.png");

/// A square RGBA image, rows top to bottom, 4 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icon {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Straight (not premultiplied) RGBA bytes.
    pub rgba: Vec<u8>,
}

impl Icon {
    fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2], self.rgba[i + 3]]
    }

    fn put(&mut self, x: u32, y: u32, c: [u8; 4]) {
        if x < self.width && y < self.height {
            let i = ((y * self.width + x) * 4) as usize;
            self.rgba[i..i + 4].copy_from_slice(&c);
        }
    }

    /// The pixels as ARGB32 in network byte order, the StatusNotifierItem
    /// `IconPixmap` format.
    pub fn to_argb32_be(&self) -> Vec<u8> {
        self.rgba.chunks_exact(4).flat_map(|p| [p[3], p[0], p[1], p[2]]).collect()
    }
}

/// The text on the badge for a count: none at 0, "99+" past 99.
pub fn badge_text(count: u32) -> Option<String> {
    match count {
        0 => None,
        1..=99 => Some(count.to_string()),
        _ => Some("99+".into()),
    }
}

fn base_64() -> &'static Icon {
    static BASE: OnceLock<Icon> = OnceLock::new();
    BASE.get_or_init(|| {
        decode_png(BASE_PNG).unwrap_or_else(|e| unreachable!("the embedded icon is a valid RGBA PNG: {e}"))
    })
}

fn decode_png(bytes: &[u8]) -> Result<Icon, png::DecodingError> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        other => unreachable!("transformations give RGBA or GA, not {other:?}"),
    };
    Ok(Icon { width: info.width, height: info.height, rgba })
}

/// The base icon at `size` pixels (clamped to [`SIZES`]), without badge.
pub fn base_icon(size: u32) -> Icon {
    let size = size.clamp(*SIZES.start(), *SIZES.end());
    downscale(base_64(), size)
}

/// Area-averaging downscale with premultiplied alpha, so edges stay clean.
fn downscale(src: &Icon, size: u32) -> Icon {
    if src.width == size {
        return src.clone();
    }
    let mut out = Icon { width: size, height: size, rgba: vec![0; (size * size * 4) as usize] };
    let ratio = src.width as f64 / size as f64;
    for y in 0..size {
        for x in 0..size {
            let (x0, x1) = (x as f64 * ratio, (x + 1) as f64 * ratio);
            let (y0, y1) = (y as f64 * ratio, (y + 1) as f64 * ratio);
            let mut acc = [0f64; 4];
            let mut area = 0f64;
            for sy in y0.floor() as u32..(y1.ceil() as u32).min(src.height) {
                let wy = (y1.min(sy as f64 + 1.0) - y0.max(sy as f64)).max(0.0);
                for sx in x0.floor() as u32..(x1.ceil() as u32).min(src.width) {
                    let wx = (x1.min(sx as f64 + 1.0) - x0.max(sx as f64)).max(0.0);
                    let w = wx * wy;
                    let p = src.pixel(sx, sy);
                    let a = p[3] as f64 / 255.0;
                    acc[0] += p[0] as f64 * a * w;
                    acc[1] += p[1] as f64 * a * w;
                    acc[2] += p[2] as f64 * a * w;
                    acc[3] += a * w;
                    area += w;
                }
            }
            let alpha = if area > 0.0 { acc[3] / area } else { 0.0 };
            let px = if acc[3] > 0.0 {
                [
                    (acc[0] / acc[3]).round() as u8,
                    (acc[1] / acc[3]).round() as u8,
                    (acc[2] / acc[3]).round() as u8,
                    (alpha * 255.0).round() as u8,
                ]
            } else {
                [0, 0, 0, 0]
            };
            out.put(x, y, px);
        }
    }
    out
}

/// 3×5 glyphs, 3 bits per row, most significant bit = left column.
const GLYPHS: [(char, [u8; 5]); 11] = [
    ('0', [0b111, 0b101, 0b101, 0b101, 0b111]),
    ('1', [0b010, 0b110, 0b010, 0b010, 0b111]),
    ('2', [0b111, 0b001, 0b111, 0b100, 0b111]),
    ('3', [0b111, 0b001, 0b111, 0b001, 0b111]),
    ('4', [0b101, 0b101, 0b111, 0b001, 0b001]),
    ('5', [0b111, 0b100, 0b111, 0b001, 0b111]),
    ('6', [0b111, 0b100, 0b111, 0b101, 0b111]),
    ('7', [0b111, 0b001, 0b010, 0b010, 0b010]),
    ('8', [0b111, 0b101, 0b111, 0b101, 0b111]),
    ('9', [0b111, 0b101, 0b111, 0b001, 0b111]),
    ('+', [0b000, 0b010, 0b111, 0b010, 0b000]),
];

fn glyph(c: char) -> [u8; 5] {
    GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| *rows).unwrap_or([0; 5])
}

/// Pixels per font pixel at an icon size.
fn font_scale(size: u32) -> u32 {
    (size / 16).max(1)
}

/// The base icon at `size` with the count badge drawn on it.
pub fn render(count: u32, size: u32) -> Icon {
    let mut icon = base_icon(size);
    let Some(text) = badge_text(count) else {
        return icon;
    };
    let size = icon.width;
    let k = font_scale(size);
    let n = text.chars().count() as u32;
    let text_w = n * 3 * k + (n - 1) * k;
    let text_h = 5 * k;
    let pad = k;
    let h = text_h + 2 * pad;
    let w = (text_w + 2 * pad + if n > 1 { k } else { 0 }).max(h);
    let (left, top) = (size - w, 0);
    // a pill: rectangle with half-disc ends of radius h/2
    let r = h as f64 / 2.0;
    for y in 0..h {
        for x in 0..w {
            let cy = y as f64 + 0.5;
            let cx = x as f64 + 0.5;
            let dx = if cx < r {
                r - cx
            } else if cx > w as f64 - r {
                cx - (w as f64 - r)
            } else {
                0.0
            };
            let dy = cy - r;
            if dx * dx + dy * dy <= r * r {
                icon.put(left + x, top + y, BADGE_RED);
            }
        }
    }
    let tx = left + (w - text_w) / 2;
    let ty = top + pad;
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        let gx = tx + i as u32 * 4 * k;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for dy in 0..k {
                        for dx in 0..k {
                            icon.put(gx + col * k + dx, ty + row as u32 * k + dy, DIGIT_WHITE);
                        }
                    }
                }
            }
        }
    }
    icon
}

/// [`render`], then the state: greyed out when disconnected, an amber dot
/// bottom right when a phone does not take the lamp.
pub fn render_state(count: u32, size: u32, health: Health) -> Icon {
    let mut icon = render(count, size);
    match health {
        Health::Ok => {}
        Health::Disconnected => {
            for p in icon.rgba.chunks_exact_mut(4) {
                if [p[0], p[1], p[2], p[3]] == BADGE_RED || [p[0], p[1], p[2], p[3]] == DIGIT_WHITE {
                    continue;
                }
                let grey = ((u32::from(p[0]) * 30 + u32::from(p[1]) * 59 + u32::from(p[2]) * 11) / 100) as u8;
                p[0] = grey;
                p[1] = grey;
                p[2] = grey;
                p[3] = p[3] / 2 + p[3] / 4;
            }
        }
        Health::PhoneUnreachable => {
            let size = icon.width;
            let r = (size as f64 / 6.0).max(3.0);
            let (cx, cy) = (size as f64 - r, size as f64 - r);
            for y in 0..size {
                for x in 0..size {
                    let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                    if dx * dx + dy * dy <= r * r {
                        icon.put(x, y, PHONE_AMBER);
                    }
                }
            }
        }
    }
    icon
}

/// Reads the state back from an icon's pixels (tests; what a person sees).
pub fn read_health(icon: &Icon) -> Health {
    let amber = icon.rgba.chunks_exact(4).filter(|p| *p == PHONE_AMBER).count();
    if amber >= 9 {
        return Health::PhoneUnreachable;
    }
    let coloured = icon
        .rgba
        .chunks_exact(4)
        .filter(|p| p[3] > 0 && *p != BADGE_RED && *p != DIGIT_WHITE && !(p[0] == p[1] && p[1] == p[2]))
        .count();
    if coloured == 0 { Health::Disconnected } else { Health::Ok }
}

/// Reads the badge's text back from an icon's pixels: the red pill's
/// bounding box, then the white font pixels in it, cell by cell. `None`
/// when there is no badge. Tests use it to check what a person would see.
pub fn read_badge(icon: &Icon) -> Option<String> {
    let mut red: Option<(u32, u32, u32, u32)> = None;
    for y in 0..icon.height {
        for x in 0..icon.width {
            if icon.pixel(x, y) == BADGE_RED {
                red = Some(match red {
                    None => (x, y, x, y),
                    Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x), d.max(y)),
                });
            }
        }
    }
    let (x0, y0, x1, y1) = red?;
    let mut white: Option<(u32, u32, u32, u32)> = None;
    for y in y0..=y1 {
        for x in x0..=x1 {
            if icon.pixel(x, y) == DIGIT_WHITE {
                white = Some(match white {
                    None => (x, y, x, y),
                    Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x), d.max(y)),
                });
            }
        }
    }
    let (wx0, wy0, wx1, wy1) = white?;
    let k = (wy1 - wy0 + 1) / 5;
    if k == 0 {
        return None;
    }
    let cells = (wx1 - wx0 + 1 + k) / (4 * k);
    let mut text = String::new();
    for i in 0..cells {
        let mut rows = [0u8; 5];
        for (row, bits) in rows.iter_mut().enumerate() {
            for col in 0..3 {
                let x = wx0 + i * 4 * k + col * k + k / 2;
                let y = wy0 + row as u32 * k + k / 2;
                if x <= wx1 && icon.pixel(x, y) == DIGIT_WHITE {
                    *bits |= 0b100 >> col;
                }
            }
        }
        text.push(GLYPHS.iter().find(|(_, g)| *g == rows).map(|(c, _)| *c)?);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_visible_and_keep_the_count() {
        for size in [16, 22, 32, 64] {
            for health in [Health::Ok, Health::Disconnected, Health::PhoneUnreachable] {
                let icon = render_state(3, size, health);
                assert_eq!(read_health(&icon), health, "size {size}");
                assert_eq!(read_badge(&icon).as_deref(), Some("3"), "size {size} {health:?}");
            }
            assert_eq!(read_health(&render_state(0, size, Health::Disconnected)), Health::Disconnected);
        }
    }

    fn count_color(icon: &Icon, c: [u8; 4]) -> usize {
        icon.rgba.chunks_exact(4).filter(|p| *p == c).count()
    }

    #[test]
    fn no_badge_at_zero() {
        for size in SIZES {
            let icon = render(0, size);
            assert_eq!(icon, base_icon(size));
            assert_eq!(count_color(&icon, BADGE_RED), 0);
            assert_eq!(read_badge(&icon), None);
        }
    }

    #[test]
    fn the_badge_says_the_count_at_every_size() {
        for size in SIZES {
            for (count, want) in
                [(1, "1"), (7, "7"), (10, "10"), (42, "42"), (99, "99"), (100, "99+"), (4_000_000, "99+")]
            {
                let icon = render(count, size);
                assert_eq!(icon.rgba.len(), (size * size * 4) as usize);
                assert_eq!(read_badge(&icon).as_deref(), Some(want), "count {count} at {size} px");
            }
        }
    }

    #[test]
    fn badge_sits_top_right_and_leaves_the_rest_of_the_icon() {
        let base = base_icon(32);
        let icon = render(5, 32);
        let changed: Vec<(u32, u32)> = (0..32)
            .flat_map(|y| (0..32).map(move |x| (x, y)))
            .filter(|&(x, y)| icon.pixel(x, y) != base.pixel(x, y))
            .collect();
        assert!(!changed.is_empty());
        assert!(changed.iter().all(|&(x, y)| x >= 16 && y < 16), "badge strays: {changed:?}");
    }

    #[test]
    fn base_icon_is_opaque_in_the_middle_and_transparent_in_the_corners() {
        for size in SIZES {
            let icon = base_icon(size);
            assert_eq!(icon.pixel(size / 2, size / 2)[3], 255, "{size}");
            assert_eq!(icon.pixel(0, size - 1)[3], 0, "{size}");
        }
    }

    #[test]
    fn argb_is_network_order() {
        let icon = render(3, 16);
        let argb = icon.to_argb32_be();
        assert_eq!(argb.len(), icon.rgba.len());
        assert_eq!(&argb[0..4], &[icon.rgba[3], icon.rgba[0], icon.rgba[1], icon.rgba[2]]);
    }

    proptest::proptest! {
        #[test]
        fn any_count_reads_back(count in 0u32..100_000, size in 16u32..=64) {
            let icon = render(count, size);
            proptest::prop_assert_eq!(read_badge(&icon), badge_text(count));
        }
    }
}
