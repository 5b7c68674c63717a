pub mod oracle;
pub mod sim;
