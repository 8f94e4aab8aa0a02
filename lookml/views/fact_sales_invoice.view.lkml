# A/R invoice headers (SAP Invoices); one row per document.
view: fact_sales_invoice {
  sql_table_name: sap_b1.fact_sales_invoice ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.doc_entry ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: doc_entry { type: number sql: ${TABLE}.doc_entry ;; }
  dimension: doc_num { type: number sql: ${TABLE}.doc_num ;; }
  dimension_group: due { type: time timeframes: [date, month] datatype: date sql: ${TABLE}.doc_due_date ;; }
  dimension: doc_currency { sql: ${TABLE}.doc_currency ;; }
  dimension: document_status { sql: ${TABLE}.document_status ;; }
  dimension: is_cancelled { type: yesno sql: ${TABLE}.is_cancelled ;; }
  dimension: num_at_card { label: "Customer reference" sql: ${TABLE}.num_at_card ;; }
  measure: total_doc_total { type: sum value_format_name: decimal_2 sql: ${TABLE}.doc_total ;; }
  measure: total_vat { type: sum value_format_name: decimal_2 sql: ${TABLE}.vat_sum ;; }
}
