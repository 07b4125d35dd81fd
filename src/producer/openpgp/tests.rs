//! Tests on real fixtures (fixtures/producer/openpgp/, fixtures/producer/debian/).
