//! The stable diagnostic codes. Each one is documented in `docs/errors.md` with an example and
//! the fix; a test checks that every code here has a section there.

use serde::Serialize;

use super::Severity;

macro_rules! codes {
    ($($variant:ident = $name:literal, $severity:ident;)*) => {
        /// A stable, kebab-case identifier for one kind of project problem.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// Returns the code as printed: `ref-not-found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// Returns the severity a diagnostic with this code has.
            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }
        }
    };
}

codes! {
    YamlSyntax = "yaml-syntax", Error;
    YamlInvalid = "yaml-invalid", Error;
    ProfileNotFound = "profile-not-found", Error;
    TargetNotFound = "target-not-found", Error;
    JinjaSyntax = "jinja-syntax", Error;
    JinjaRender = "jinja-render", Error;
    CompilerError = "compiler-error", Error;
    EnvVarMissing = "env-var-missing", Error;
    VarMissing = "var-missing", Error;
    ConfigInvalid = "config-invalid", Error;
    RefNotFound = "ref-not-found", Error;
    RefDisabled = "ref-disabled", Error;
    SourceNotFound = "source-not-found", Error;
    DuplicateName = "duplicate-name", Error;
    DuplicateMacro = "duplicate-macro", Error;
    DependencyCycle = "dependency-cycle", Error;
    TestInvalid = "test-invalid", Error;
    SeedInvalid = "seed-invalid", Error;
        PatchWithoutNode = "patch-without-node", Warning;
    SyncInvalid = "sync-invalid", Error;
    SyncModelNotFound = "sync-model-not-found", Error;
    SyncColumnNotFound = "sync-column-not-found", Error;
    SyncColumnsDeferred = "sync-columns-deferred", Warning;
    SyncDependsOnNotFound = "sync-depends-on-not-found", Error;
    DestinationNotFound = "destination-not-found", Error;
    DestinationInvalid = "destination-invalid", Error;
    SecretLiteral = "secret-literal", Error;
    ModeUnsupported = "mode-unsupported", Error;
    MatchOnMissing = "match-on-missing", Error;
    ScheduleInvalid = "schedule-invalid", Error;
    RateLimitInvalid = "rate-limit-invalid", Error;
    GuardInvalid = "guard-invalid", Error;
    FieldConflict = "field-conflict", Error;
    PiiUnmasked = "pii-unmasked", Error;
    MappingInvalid = "mapping-invalid", Error;
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
