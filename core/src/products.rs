//! The products catalogue: what orders can be created for, and at what exact price.
//!
//! Loaded from the TOML file named by `PRODUCTS_FILE`:
//! ```toml
//! [[product]]
//! id = "coffee"
//! name = "A cup of coffee"
//! price = "1.5"          # a string, so the price is exact (no float)
//! memo = "Coffee"        # optional; defaults to the name
//! ```
//! Without a file, a small built-in demo catalogue is used so a fresh clone runs.

use crate::amount::PiAmount;
use std::collections::HashMap;
use std::path::Path;
use toml::Spanned;

/// The most items one order may ask for (guards against absurd totals).
pub const MAX_QUANTITY: u32 = 10_000;

/// One product.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Product {
    /// Stable id the frontend sends as `productId`.
    pub id: String,
    pub name: String,
    /// Exact unit price.
    pub price: PiAmount,
    /// The payment memo; defaults to the name.
    pub memo: Option<String>,
}

/// Why a product cannot be ordered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("quantity must be between 1 and {MAX_QUANTITY}, got {0}")]
    BadQuantity(u32),
    #[error("the total of {quantity} × {price} Pi is too large for one payment: order fewer")]
    TotalTooLarge { price: PiAmount, quantity: u32 },
}

impl Product {
    /// price × quantity, exact and checked.
    pub fn total(&self, quantity: u32) -> Result<PiAmount, ProductError> {
        if quantity == 0 || quantity > MAX_QUANTITY {
            return Err(ProductError::BadQuantity(quantity));
        }
        self.price
            .checked_mul(quantity)
            .ok_or(ProductError::TotalTooLarge {
                price: self.price,
                quantity,
            })
    }

    /// The memo for an order of `quantity`.
    pub fn memo_for(&self, quantity: u32) -> String {
        let base = self.memo.as_deref().unwrap_or(&self.name);
        if quantity == 1 {
            base.to_string()
        } else {
            format!("{quantity} × {base}")
        }
    }
}

/// Why a catalogue file could not be loaded; names the file and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read PRODUCTS_FILE {file}: {source}; check the path")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error(
        "{file}: no [[product]] entries; add at least one or unset PRODUCTS_FILE for the demo catalogue"
    )]
    Empty { file: String },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    product: Vec<FileProduct>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProduct {
    id: Spanned<String>,
    name: String,
    price: Spanned<toml::Value>,
    memo: Option<String>,
}

/// The products on sale, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    products: Vec<Product>,
    by_id: HashMap<String, usize>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Catalogue {
    /// Parse catalogue text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Catalogue, CatalogueError> {
        let invalid = |offset: usize, message: String| CatalogueError::Invalid {
            file: file.to_string(),
            line: line_of(text, offset),
            message,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, e.message().to_string())
        })?;
        if doc.product.is_empty() {
            return Err(CatalogueError::Empty {
                file: file.to_string(),
            });
        }
        let mut products = Vec::with_capacity(doc.product.len());
        let mut by_id = HashMap::new();
        for p in doc.product {
            let id = p.id.get_ref().clone();
            if !valid_id(&id) {
                return Err(invalid(
                    p.id.span().start,
                    format!("product id {id:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
                ));
            }
            let price = match p.price.get_ref() {
                toml::Value::String(s) => PiAmount::parse(s)
                    .map_err(|e| invalid(p.price.span().start, format!("product {id:?}: {e}")))?,
                _ => {
                    return Err(invalid(
                        p.price.span().start,
                        format!(
                            "product {id:?}: write the price as a string, e.g. price = \"1.5\", so it stays exact"
                        ),
                    ));
                }
            };
            if by_id.insert(id.clone(), products.len()).is_some() {
                return Err(invalid(
                    p.id.span().start,
                    format!("product id {id:?} appears twice"),
                ));
            }
            products.push(Product {
                id,
                name: p.name,
                price,
                memo: p.memo,
            });
        }
        Ok(Catalogue { products, by_id })
    }

    /// Load the catalogue file at `path`.
    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            file: file.clone(),
            source,
        })?;
        Catalogue::from_toml_str(&text, &file)
    }

    /// The file at `path` if given (`PRODUCTS_FILE`), else the demo catalogue.
    pub fn load_or_demo(path: Option<&Path>) -> Result<Catalogue, CatalogueError> {
        match path {
            Some(p) => Catalogue::load(p),
            None => Ok(Catalogue::demo()),
        }
    }

    /// A built-in catalogue for demos and a fresh clone.
    pub fn demo() -> Catalogue {
        let text = r#"
[[product]]
id = "coffee"
name = "A cup of coffee"
price = "1.5"

[[product]]
id = "sticker"
name = "Pi sticker"
price = "0.25"
memo = "Sticker"

[[product]]
id = "gold-pass"
name = "Gold pass (30 days)"
price = "3.1415926"
"#;
        match Catalogue::from_toml_str(text, "<built-in demo catalogue>") {
            Ok(c) => c,
            Err(e) => unreachable!("the demo catalogue is valid: {e}"),
        }
    }

    /// A product by id.
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.by_id.get(id).map(|&i| &self.products[i])
    }

    /// All products, in file order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_prices() {
        let c = Catalogue::from_toml_str(
            "[[product]]\nid = \"a\"\nname = \"A\"\nprice = \"0.1\"\n\n[[product]]\nid = \"b\"\nname = \"B\"\nprice = \"2\"\nmemo = \"Bee\"\n",
            "p.toml",
        )
        .unwrap();
        let a = c.get("a").unwrap();
        assert_eq!(a.price.stroops(), 1_000_000);
        // 3 × 0.1 is exactly 0.3 (no float drift).
        assert_eq!(a.total(3).unwrap().stroops(), 3_000_000);
        assert_eq!(c.get("b").unwrap().memo_for(2), "2 × Bee");
        assert_eq!(a.memo_for(1), "A");
        assert!(c.get("zzz").is_none());
        assert_eq!(c.products().len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "[[product]]\nid = \"a\"\nname = \"A\"\nprice = 1.5\n";
        let err = Catalogue::from_toml_str(text, "shop.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("shop.toml:4:"), "{err}");
        assert!(err.contains("string"), "{err}");

        let text = "[[product]]\nid = \"a\"\nname = \"A\"\nprice = \"0.00000001\"\n";
        let err = Catalogue::from_toml_str(text, "shop.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("shop.toml:4:") && err.contains("7 decimals"),
            "{err}"
        );

        let text = "[[product]]\nid = \"a\"\nname = \"A\"\nprice = \"1\"\n[[product]]\nid = \"a\"\nname = \"B\"\nprice = \"1\"\n";
        let err = Catalogue::from_toml_str(text, "shop.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("shop.toml:6:") && err.contains("twice"),
            "{err}"
        );

        let err = Catalogue::from_toml_str("[[product]]\nid = \"a\"\n", "shop.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("shop.toml:"), "{err}");

        let err = Catalogue::from_toml_str("", "shop.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no [[product]]"), "{err}");

        let err = Catalogue::load(Path::new("/nonexistent/products.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/products.toml"), "{err}");
    }

    #[test]
    fn totals_are_checked() {
        let demo = Catalogue::demo();
        let coffee = demo.get("coffee").unwrap();
        assert_eq!(coffee.total(2).unwrap().to_string(), "3");
        assert_eq!(coffee.total(0), Err(ProductError::BadQuantity(0)));
        assert_eq!(
            coffee.total(MAX_QUANTITY + 1),
            Err(ProductError::BadQuantity(MAX_QUANTITY + 1))
        );
        let huge = Product {
            id: "x".into(),
            name: "X".into(),
            price: PiAmount::from_stroops(i64::MAX / 2).unwrap(),
            memo: None,
        };
        assert!(matches!(
            huge.total(3),
            Err(ProductError::TotalTooLarge { .. })
        ));
    }
}
