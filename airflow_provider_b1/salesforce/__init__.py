"""SAP Business One <-> Salesforce: the mapping, the two sinks and the reconciliation of ``sap_b1_salesforce``."""
