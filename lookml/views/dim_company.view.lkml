# The SAP companies loaded into the warehouse: the Airflow connection id every row carries in its
# company column, and the company database (CompanyDB) it logs into, as people know the company.
view: dim_company {
  sql_table_name: sap_b1.dim_company ;;

  dimension: company { primary_key: yes label: "Company connection" sql: ${TABLE}.company ;; }
  dimension: company_db { label: "Company" description: "The SAP company database (CompanyDB)." sql: ${TABLE}.company_db ;; }
}
