"""ServiceTitan -> SAP Business One: customers, invoices and payments into receivables, exactly once.

The flow (:data:`~airflow_provider_b1.servicetitan.flow.SERVICETITAN_FLOW`) is declarations over
the sync engine: the ServiceTitan source, the SAP receivables sink (:mod:`.sink`), a company's
mapping (:mod:`.mappings`) and the customer mapping table (:mod:`.customers`).
"""
