# One row per cost document line (SAP fact_purchase_invoice DocumentLines); key company + doc_entry + line_num.
view: fact_purchase_invoice_line {
  sql_table_name: sap_b1.fact_purchase_invoice_line ;;

  dimension: pk {
    primary_key: yes
    hidden: yes
    sql: ${TABLE}.company || '-' || ${TABLE}.doc_entry || '-' || ${TABLE}.line_num ;;
  }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: doc_entry { type: number sql: ${TABLE}.doc_entry ;; }
  dimension: line_num { type: number sql: ${TABLE}.line_num ;; }
  dimension_group: doc {
    type: time
    timeframes: [date, week, month, quarter, year]
    datatype: date
    sql: ${TABLE}.doc_date ;;
  }
  dimension: card_code { label: "Business partner code" sql: ${TABLE}.card_code ;; }
  dimension: item_code { sql: ${TABLE}.item_code ;; }
  dimension: item_description { sql: ${TABLE}.item_description ;; }
  dimension: account_code { label: "GL account code" sql: ${TABLE}.account_code ;; }
  dimension: costing_code { label: "Profit centre (dimension 1)" sql: ${TABLE}.costing_code ;; }
  dimension: costing_code2 { label: "Profit centre (dimension 2)" sql: ${TABLE}.costing_code2 ;; }
  dimension: costing_code3 { label: "Profit centre (dimension 3)" sql: ${TABLE}.costing_code3 ;; }
  dimension: costing_code4 { label: "Profit centre (dimension 4)" sql: ${TABLE}.costing_code4 ;; }
  dimension: costing_code5 { label: "Profit centre (dimension 5)" sql: ${TABLE}.costing_code5 ;; }
  dimension: currency { sql: ${TABLE}.currency ;; }
  dimension: tax_code { sql: ${TABLE}.tax_code ;; }
  dimension: warehouse_code { sql: ${TABLE}.warehouse_code ;; }
  dimension: line_status { sql: ${TABLE}.line_status ;; }
  dimension: quantity { type: number sql: ${TABLE}.quantity ;; }
  dimension: price { type: number sql: ${TABLE}.price ;; }
  dimension: line_total { type: number sql: ${TABLE}.line_total ;; }
  # Cancellation is recorded on the document header.
  dimension: is_cancelled {
    type: yesno
    sql: COALESCE((SELECT h.is_cancelled FROM sap_b1.fact_purchase_invoice AS h WHERE h.company = ${TABLE}.company AND h.doc_entry = ${TABLE}.doc_entry), false) ;;
  }

  measure: line_count { type: count }
  # A document is its company's: DocEntry 1 of one company is not DocEntry 1 of another.
  measure: document_count { type: count_distinct sql: ${company} || '-' || ${doc_entry} ;; }
  measure: total_quantity { type: sum sql: ${quantity} ;; }
  measure: total_cost {
    label: "Total cost (net, document currency)"
    type: sum
    value_format_name: decimal_2
    sql: ${line_total} ;;
  }
}
