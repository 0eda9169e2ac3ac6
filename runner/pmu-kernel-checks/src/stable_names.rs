//! The one shape of the project's stable names: signature kinds, magnitude
//! units and reason codes are each an enum whose variants have a kebab-case
//! name (what reports, expectations and known-bugs.yaml write) and a meaning
//! (their documentation, which `pmu-conformance codes` prints).

/// Defines `pub enum $enum` with `ALL`, `name`, `about`, `from_name` and
/// `Display` (the name), from `/// doc` `Variant => "name",` lines.
macro_rules! stable_names {
    ($(#[doc = $enum_doc:literal])* $enum:ident {
        $($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*
    }) => {
        $(#[doc = $enum_doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
        pub enum $enum {
            $($(#[doc = $doc])* $variant,)*
        }

        impl $enum {
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)*
                }
            }

            /// What the name means, from its documentation.
            pub fn about(self) -> &'static str {
                match self {
                    $($enum::$variant => concat!($($doc, " ",)*).trim_ascii(),)*
                }
            }

            pub fn from_name(name: &str) -> Option<$enum> {
                $enum::ALL.iter().copied().find(|v| v.name() == name)
            }
        }

        impl core::fmt::Display for $enum {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use stable_names;
