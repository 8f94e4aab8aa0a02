# Incoming payments (SAP IncomingPayments); vendor payments live in sap_b1.fact_vendor_payment
# with the same columns (extend this view with sql_table_name changed to add them).
view: fact_payment {
  sql_table_name: sap_b1.fact_incoming_payment ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.doc_entry ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: doc_entry { type: number sql: ${TABLE}.doc_entry ;; }
  dimension: doc_num { type: number sql: ${TABLE}.doc_num ;; }
  dimension_group: doc { type: time timeframes: [date, week, month, quarter, year] datatype: date sql: ${TABLE}.doc_date ;; }
  dimension: doc_type { sql: ${TABLE}.doc_type ;; }
  dimension: card_code { label: "Business partner code" sql: ${TABLE}.card_code ;; }
  dimension: doc_currency { sql: ${TABLE}.doc_currency ;; }
  dimension: is_cancelled { type: yesno sql: ${TABLE}.is_cancelled ;; }
  dimension: cash_sum { type: number sql: ${TABLE}.cash_sum ;; }
  dimension: transfer_sum { type: number sql: ${TABLE}.transfer_sum ;; }

  measure: payment_count { type: count filters: [is_cancelled: "no"] }
  measure: total_paid {
    type: sum
    value_format_name: decimal_2
    sql: CASE WHEN ${is_cancelled} THEN 0 ELSE COALESCE(${cash_sum}, 0) + COALESCE(${transfer_sum}, 0) END ;;
  }
}
