//! Geometry in pixel coordinates (x to the right, y down), as `f32`.

use crate::FrameError;
use serde::{Deserialize, Serialize};

/// A point in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned rectangle: top-left corner and size, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// The overlap of two rectangles (zero-sized when they do not meet).
    pub fn intersection(&self, other: &Rect) -> Rect {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        Rect::new(x0, y0, (x1 - x0).max(0.0), (y1 - y0).max(0.0))
    }

    /// Intersection over union, in [0, 1].
    pub fn iou(&self, other: &Rect) -> f32 {
        let inter = self.intersection(other).area();
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x && p.y >= self.y && p.x < self.x + self.w && p.y < self.y + self.h
    }
}

/// A simple polygon (at least three points), e.g. a bed region of interest or a privacy mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Point>", into = "Vec<Point>")]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    pub fn new(points: Vec<Point>) -> Result<Self, FrameError> {
        if points.len() < 3 {
            return Err(FrameError::PolygonTooSmall(points.len()));
        }
        Ok(Self { points })
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Even-odd rule point-in-polygon test.
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// The smallest rectangle holding every point.
    pub fn bounding_rect(&self) -> Rect {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in &self.points {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }
}

impl TryFrom<Vec<Point>> for Polygon {
    type Error = FrameError;
    fn try_from(points: Vec<Point>) -> Result<Self, Self::Error> {
        Polygon::new(points)
    }
}

impl From<Polygon> for Vec<Point> {
    fn from(p: Polygon) -> Self {
        p.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn iou_of_identical_rects_is_one_and_of_disjoint_is_zero() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&Rect::new(20.0, 20.0, 5.0, 5.0)), 0.0);
        assert!((a.iou(&Rect::new(5.0, 0.0, 10.0, 10.0)) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn polygon_contains_inside_points_only() {
        let tri = Polygon::new(vec![pt(0.0, 0.0), pt(10.0, 0.0), pt(0.0, 10.0)]).unwrap();
        assert!(tri.contains(pt(2.0, 2.0)));
        assert!(!tri.contains(pt(8.0, 8.0)));
        assert_eq!(tri.bounding_rect(), Rect::new(0.0, 0.0, 10.0, 10.0));
    }

    #[test]
    fn polygon_needs_three_points() {
        assert_eq!(Polygon::new(vec![pt(0.0, 0.0), pt(1.0, 1.0)]), Err(FrameError::PolygonTooSmall(2)));
        let parsed: Result<Polygon, _> = serde_json::from_str("[{\"x\":0,\"y\":0}]");
        assert!(parsed.is_err());
    }
}
