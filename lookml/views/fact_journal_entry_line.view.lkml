# General ledger lines (SAP JournalEntries JournalEntryLines); key company + jdt_num + line_id.
view: fact_journal_entry_line {
  sql_table_name: sap_b1.fact_journal_entry_line ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.jdt_num || '-' || ${TABLE}.line_id ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: jdt_num { label: "Journal entry" type: number sql: ${TABLE}.jdt_num ;; }
  dimension: line_id { type: number sql: ${TABLE}.line_id ;; }
  dimension_group: reference {
    label: "Posting"
    type: time
    timeframes: [date, week, month, quarter, year]
    datatype: date
    sql: ${TABLE}.reference_date ;;
  }
  dimension: account_code { label: "GL account code" sql: ${TABLE}.account_code ;; }
  dimension: short_name { sql: ${TABLE}.short_name ;; }
  dimension: costing_code { label: "Profit centre (dimension 1)" sql: ${TABLE}.costing_code ;; }
  dimension: costing_code2 { label: "Profit centre (dimension 2)" sql: ${TABLE}.costing_code2 ;; }
  dimension: costing_code3 { label: "Profit centre (dimension 3)" sql: ${TABLE}.costing_code3 ;; }
  dimension: costing_code4 { label: "Profit centre (dimension 4)" sql: ${TABLE}.costing_code4 ;; }
  dimension: costing_code5 { label: "Profit centre (dimension 5)" sql: ${TABLE}.costing_code5 ;; }
  dimension: line_memo { sql: ${TABLE}.line_memo ;; }
  dimension: debit { type: number sql: ${TABLE}.debit ;; }
  dimension: credit { type: number sql: ${TABLE}.credit ;; }

  measure: total_debit { type: sum value_format_name: decimal_2 sql: ${debit} ;; }
  measure: total_credit { type: sum value_format_name: decimal_2 sql: ${credit} ;; }
  measure: net_amount { label: "Net (debit - credit)" type: sum value_format_name: decimal_2 sql: COALESCE(${debit}, 0) - COALESCE(${credit}, 0) ;; }
  # Revenue accounts are credit-normal, expense accounts debit-normal.
  measure: revenue {
    type: sum
    value_format_name: decimal_2
    sql: CASE WHEN ${dim_gl_account.account_type} = 'at_Revenues' THEN COALESCE(${credit}, 0) - COALESCE(${debit}, 0) ELSE 0 END ;;
  }
  measure: cost {
    type: sum
    value_format_name: decimal_2
    sql: CASE WHEN ${dim_gl_account.account_type} = 'at_Expenses' THEN COALESCE(${debit}, 0) - COALESCE(${credit}, 0) ELSE 0 END ;;
  }
  measure: margin { type: number value_format_name: decimal_2 sql: ${revenue} - ${cost} ;; }
}
